import BackupModel
import BackupStorage
import Foundation
import NIOCore
import TestSupport
import Testing

@testable import BackupCloud

/// S3 behaviour beyond the shared suite, against the real test servers.
@Suite struct S3ServerTests {
  /// SeaweedFS recomputes every signature: a wrong secret is refused, and the error names the
  /// credential source, never the secret.
  @Test func wrongSecretIsRefusedWithAClearError() throws {
    guard let server = S3TestServer.seaweed else { return skipNote("SeaweedFS wrong secret") }
    let good = try server.store()
    let secret = "not-the-right-secret-key-0123"
    let bad = try S3Store(
      settings: good.settings,
      credentials: AWSCredentials(
        accessKeyId: server.accessKey, secretAccessKey: secret, source: "profile wrong in /x"),
      partRetry: .none)
    let error = try #require(throws: BackupError.self) { try bad.put("backup-x.bin", data: Data("x".utf8)) }
    #expect(error.description.contains("SignatureDoesNotMatch"), "\(error)")
    #expect(error.description.contains("profile wrong in /x"))
    #expect(!error.description.contains(secret))
    #expect(error.status == .storage)
    #expect(try good.stat("backup-x.bin") == nil)
    // a HEAD's refusal has no error document, and still names the credentials
    let head = try #require(throws: BackupError.self) { try bad.stat("backup-x.bin") }
    #expect(
      head.description.contains("refused") && head.description.contains("profile wrong in /x"), "\(head)")
  }

  /// Keys with spaces, +, =, unicode and slashes in the prefix are signed and stored as given.
  @Test func awkwardKeysRoundTrip() throws {
    guard let server = S3TestServer.seaweed else { return skipNote("SeaweedFS awkward keys") }
    let store = try server.store(prefix: "a b/c+d=e/é ü")
    let names = ["x y.json", "p+q=r.bin", "ünïcødé 💾.txt", "tilde~and%percent"]
    for (i, name) in names.enumerated() { try store.put(name, data: Data(pattern(100 + i))) }
    #expect(try store.list(prefix: "").map(\.name) == names.sorted())
    for (i, name) in names.enumerated() { #expect(try store.read(name) == Data(pattern(100 + i)), "\(name)") }
  }

  @Test func missingBucketIsNotFound() throws {
    for server in S3TestServer.all {
      let store = try server.store(createBucket: false)
      let error = try #require(throws: BackupError.self) { try store.list(prefix: "") }
      #expect(error.status == .notFound, "\(server.name): \(error)")
      #expect(error.description.contains(store.settings.bucket))
    }
  }

  /// A multipart upload that fails (moto refuses parts under 5 MiB at completion) or is
  /// abandoned leaves no parts behind.
  @Test func failedOrAbortedMultipartLeavesNoParts() throws {
    for server in S3TestServer.all {
      let store = try server.store(partSize: S3Settings.minPartSize, parallel: 2)
      let upload = try store.put("backup-aborted.bin")
      let data = pattern(S3Settings.minPartSize * 2 + 10)
      try data.withUnsafeBytes { try upload.write($0) }
      #expect(try store.pendingUploads().count == 1, "\(server.name)")
      upload.abort()
      #expect(try store.pendingUploads().isEmpty, "\(server.name)")
      #expect(try store.stat("backup-aborted.bin") == nil)
    }
    guard let moto = S3TestServer.moto else { return skipNote("moto multipart failure") }
    let store = try moto.store(partSize: 1 << 20, parallel: 2)
    let upload = try store.put("backup-small-parts.bin")
    try pattern(3 << 20).withUnsafeBytes { try upload.write($0) }
    #expect(throws: BackupError.self) { try upload.finish() }
    #expect(try store.pendingUploads().isEmpty)
    #expect(try store.stat("backup-small-parts.bin") == nil)
  }

  @Test func listingPagesThroughContinuationTokens() throws {
    guard let server = S3TestServer.moto else { return skipNote("moto pagination") }
    let store = try server.store()  // at the root: moto refuses a prefix parameter with a slash
    for i in 0..<1001 { try store.put(String(format: "backup-%04d", i), data: Data([UInt8(i & 0xFF)])) }
    let all = try store.list(prefix: "backup-")
    #expect(all.count == 1001)
    #expect(all.first?.name == "backup-0000" && all.last?.name == "backup-1000")
    store.listPageSize = 7
    #expect(try store.list(prefix: "backup-00").count == 100)
  }

  /// Unfinished uploads are found across pages of ListMultipartUploads. SeaweedFS pages (checked
  /// first, so that the loop is really exercised) by upload id alone; moto ignores max-uploads.
  @Test func unfinishedUploadsPageThroughMarkers() throws {
    if S3TestServer.all.isEmpty { skipNote("multipart upload listing") }
    for server in S3TestServer.all {
      let store = try server.store(prefix: server.name == "moto" ? "" : "paged uploads")
      var ids: [String] = []
      for i in 0..<5 {
        let r = try store.client.expectOK(
          "start", .POST, key: store.client.key("backup-\(i).bin"), query: [("uploads", "")])
        ids.append(try #require(XML.first("UploadId", in: r.text)))
      }
      let page = try store.client.expectOK(
        "list", .GET, key: nil, query: [("uploads", ""), ("max-uploads", "2")])
      if server.name == "seaweedfs" {
        #expect(XML.first("IsTruncated", in: page.text) == "true", "\(page.text)")
      }
      store.listPageSize = 2
      let pending = try store.unfinishedUploads()
      #expect(pending.map(\.handle).sorted() == ids.sorted(), "\(server.name)")
      #expect(Set(pending.map(\.name)) == Set((0..<5).map { "backup-\($0).bin" }))
      for u in pending { try store.abortUpload(u) }
      #expect(try store.pendingUploads().isEmpty, "\(server.name)")
    }
  }

  /// SeaweedFS refuses a request signed with a date far from its own, and the error says the
  /// clock is off, by how much, and what to do; a small skew is accepted.
  @Test func skewedClockIsRefusedWithAClearError() throws {
    guard let server = S3TestServer.seaweed else { return skipNote("SeaweedFS clock skew") }
    let store = try server.store()
    store.clock = { Date().addingTimeInterval(3 * 3600 + 60) }
    let ahead = try #require(throws: BackupError.self) { try store.put("backup-skew", data: Data("x".utf8)) }
    #expect(ahead.status == .storage)
    #expect(
      ahead.description.contains("RequestTimeTooSkewed") && ahead.description.contains("3 hours ahead of"),
      "\(ahead)")
    #expect(ahead.description.contains("clock") && ahead.description.contains("NTP"), "\(ahead)")
    #expect(!ahead.description.contains("\n"))
    store.clock = { Date().addingTimeInterval(-40 * 60) }
    let behind = try #require(throws: BackupError.self) { try store.list(prefix: "") }
    #expect(behind.description.contains("minutes behind"), "\(behind)")
    // a HEAD's refusal has no error document: the Date header tells the skew
    let head = try #require(throws: BackupError.self) { try store.stat("backup-skew") }
    #expect(
      head.description.contains("RequestTimeTooSkewed") && head.description.contains("minutes behind"),
      "\(head)")
    store.clock = { Date().addingTimeInterval(60) }
    try store.put("backup-skew", data: Data("x".utf8))
    #expect(try store.stat("backup-skew") == 1)
  }

  /// A long sequential read goes through the read-ahead windows byte for byte, and a jump
  /// back (which drops them) still reads the right bytes.
  @Test func sequentialReadsAheadAndJumpsStayExact() throws {
    guard let server = S3TestServer.seaweed else { return skipNote("S3 read-ahead") }
    let store = try server.store(partSize: S3Settings.minPartSize, parallel: 3)
    let data = pattern(44 * 1024 * 1024 + 777, seed: 9)
    let upload = try store.put("backup-long.bin")
    try data.withUnsafeBytes { try upload.write($0) }
    try upload.finish()
    let input = try store.open("backup-long.bin")
    #expect(try readRange(input, 0, data.count, chunk: 1 << 20) == Array(data))
    // windows read to their end are filled again by later GETs instead of fresh buffers
    #expect(((input as? S3Input)?.refills ?? 0) >= 1)
    #expect(try readRange(input, 5_000_000, 3_000_000) == Array(data[5_000_000..<8_000_000]))
    #expect(
      try readRange(input, 30_000_000, data.count - 30_000_000, chunk: 1 << 20) == Array(data[30_000_000...]))
    // every range lies within one 8 MiB slot, as multipart parts are laid out (a range across
    // two stored chunks costs the server more)
    #expect((input as? S3Input)?.crossings == 0)
    // borrowing the windows instead of copying out of them gives the same bytes, also through
    // the retry and rate-limit wrappers
    for lender in [
      try store.open("backup-long.bin"),
      try RetryingStore(RateLimitedStore(store, bytesPerSecond: 1 << 40)).open("backup-long.bin"),
    ] {
      var borrowed: [UInt8] = []
      while let lent = try lender.borrow(at: Int64(borrowed.count), limit: 1 << 20), lent.count > 0 {
        #expect(lent.count <= 1 << 20)
        borrowed.append(contentsOf: lent)
      }
      #expect(borrowed == Array(data))
    }
  }

  /// Object and part bodies are sent as UNSIGNED-PAYLOAD (not hashed twice); the signed
  /// Content-MD5 header is what the server checks the body against, so a body that does not
  /// match it is refused, and nothing is stored. (SeaweedFS checks it as S3 does; moto stores
  /// such a body without checking, so it is not the judge here.)
  @Test func unsignedBodiesAreCheckedAgainstTheirSignedMD5() throws {
    guard let server = S3TestServer.seaweed else { return skipNote("SeaweedFS Content-MD5") }
    do {
      let store = try server.store()
      let body = ByteBuffer(string: "the body that is sent")
      let otherMD5 = Data(S3Client.md5(Array("a different body".utf8))).base64EncodedString()
      let bad = try store.client.send(
        .PUT, key: store.client.key("backup-md5.bin"), headers: ["content-md5": otherMD5], body: body)
      #expect(bad.status == 400, "\(server.name): \(bad.status) \(bad.text)")
      #expect(
        bad.text.contains("BadDigest") || bad.text.contains("InvalidDigest"), "\(server.name): \(bad.text)")
      #expect(try store.stat("backup-md5.bin") == nil, "\(server.name)")
      try store.putObject(key: store.client.key("backup-md5.bin"), body: body)
      #expect(try store.read("backup-md5.bin") == Data("the body that is sent".utf8), "\(server.name)")
    }
  }

  /// With `cloudConfig.checksum=crc32` bodies carry a signed x-amz-checksum-crc32 instead of a
  /// Content-MD5. SeaweedFS checks it as S3 does: it refuses a body that does not match and
  /// stores nothing, and single PUTs and multipart uploads (the algorithm declared when the
  /// upload starts, each part's CRC-32 in the completion) round-trip. moto neither checks nor
  /// echoes it, like a store without S3's additional checksums: such an upload is refused with a
  /// clear error and leaves nothing behind. The CRC is libdeflate's, checked against the value
  /// `aws s3api` sends for a known string.
  @Test func crc32ChecksumsAreCheckedByTheServer() throws {
    #expect(S3Client.crc32(ByteBuffer(string: "hello\n")) == "NjowIA==")
    let big = pattern(3 * S3Settings.minPartSize + 12345, seed: 5)
    let small = pattern(1000, seed: 4)
    func upload(_ store: S3Store) throws {
      let upload = try store.put("backup-big.bin")
      try big.withUnsafeBytes { try upload.write($0) }
      try upload.finish()
    }
    if let server = S3TestServer.seaweed {
      let store = try server.store(partSize: S3Settings.minPartSize, parallel: 2, checksum: .crc32)
      let bad = try store.client.send(
        .PUT, key: store.client.key("backup-crc.bin"),
        headers: [S3Client.crc32Header: S3Client.crc32(ByteBuffer(string: "another body"))],
        body: ByteBuffer(string: "the body that is sent"))
      #expect(bad.status == 400, "\(bad.status) \(bad.text)")
      #expect(try store.stat("backup-crc.bin") == nil)
      try store.put("backup-small.bin", data: Data(small))
      #expect(try store.read("backup-small.bin") == Data(small))
      try upload(store)
      #expect(try store.read("backup-big.bin") == Data(big))
      #expect(try store.unfinishedUploads().isEmpty)
    } else {
      skipNote("SeaweedFS x-amz-checksum-crc32")
    }
    if let server = S3TestServer.moto {
      let store = try server.store(partSize: S3Settings.minPartSize, parallel: 2, checksum: .crc32)
      for attempt in [{ try store.put("backup-small.bin", data: Data(small)) }, { try upload(store) }] {
        #expect {
          try attempt()
        } throws: { ($0 as? BackupError)?.message.contains("did not confirm the CRC-32") == true }
      }
      #expect(try store.stat("backup-small.bin") == nil)
      #expect(try store.stat("backup-big.bin") == nil)
      #expect(try store.unfinishedUploads().isEmpty)
    }
  }

  /// An upload never holds more than `parallel` part buffers (the one being filled included),
  /// and reuses them: memory is partSize x parallel whatever the object's size.
  @Test func partBuffersAreBoundedByParallelAndReused() throws {
    guard let server = S3TestServer.seaweed else { return skipNote("part buffers") }
    let part = S3Settings.minPartSize
    let store = try server.store(partSize: part, parallel: 2)
    let upload = try #require(try store.put("backup-buffers.bin") as? S3Upload)
    let data = pattern(part * 5 + 123)
    for chunk in stride(from: 0, to: data.count, by: 1 << 20) {
      try data[chunk..<min(data.count, chunk + (1 << 20))].withUnsafeBytes { try upload.write($0) }
    }
    try upload.finish()
    #expect(upload.partBuffersAllocated <= 2, "\(upload.partBuffersAllocated) buffers for 6 parts")
    #expect(try store.read("backup-buffers.bin") == Data(data))
  }

  /// Upload progress counts what S3 acknowledged (completed parts), not what was written.
  @Test func confirmedBytesCountAcknowledgedPartsOnly() throws {
    guard let server = S3TestServer.seaweed else { return skipNote("upload progress") }
    let part = S3Settings.minPartSize
    let store = try server.store(partSize: part, parallel: 1)
    let upload = try store.put("backup-progress.bin")
    #expect(upload.confirmedBytes == 0)
    let bytes = pattern(part)
    try bytes.withUnsafeBytes { try upload.write($0) }  // part 1 goes to a worker
    #expect([0, Int64(part)].contains(upload.confirmedBytes))
    try bytes.withUnsafeBytes { try upload.write($0) }  // part 2 waits for part 1's slot
    #expect(upload.confirmedBytes >= Int64(part))
    try pattern(100).withUnsafeBytes { try upload.write($0) }
    #expect(upload.confirmedBytes <= Int64(2 * part), "the tail is not acknowledged yet")
    try upload.finish()
    #expect(upload.confirmedBytes == Int64(2 * part + 100))
  }

  @Test func storageClassAndEncryptionHeadersAreSent() throws {
    guard let server = S3TestServer.moto else { return skipNote("moto storage class") }
    let store = try server.store(partSize: S3Settings.minPartSize, storageClass: "STANDARD_IA", sse: "AES256")
    try store.put("small", data: Data("x".utf8))
    let upload = try store.put("large")
    try pattern(S3Settings.minPartSize + 1).withUnsafeBytes { try upload.write($0) }
    try upload.finish()
    for name in ["small", "large"] {
      let r = try store.client.send(.HEAD, key: store.client.key(name))
      #expect(r.header("x-amz-storage-class") == "STANDARD_IA", "\(name)")
      #expect(r.header("x-amz-server-side-encryption") == "AES256", "\(name)")
    }
  }

  /// Presigned URLs: SeaweedFS serves the object for ours, and refuses one whose signature,
  /// expiry or key was tampered with, or that has expired; and `aws s3 presign` (botocore, an
  /// independent signer) signs the same request with the same signature.
  @Test func presignedURLsAreCheckedBySeaweedFSAndMatchTheCLI() throws {
    guard let server = S3TestServer.seaweed else { return skipNote("presigned URLs") }
    let store = try server.store(prefix: "pre signed")
    try store.put("backup a+b.bin", data: Data("presigned body".utf8))
    try store.put("other.bin", data: Data("other".utf8))
    let key = store.client.key("backup a+b.bin")
    let dir = TempDir("presign")
    func get(_ url: String) throws -> (code: String, body: Data?) {
      let r = try runProcess(
        "curl", ["-s", "-o", dir.file("body"), "-w", "%{http_code}", url], timeout: 60)
      let body = FileManager.default.contents(atPath: dir.file("body"))
      try? FileManager.default.removeItem(atPath: dir.file("body"))
      return (String(decoding: r.stdout, as: UTF8.self), body)
    }
    let url = store.client.presignedURL(.GET, key: key, expires: 300)
    let ok = try get(url)
    #expect(ok.code == "200" && ok.body == Data("presigned body".utf8), "\(ok.code) \(url)")
    // the signature's last digit changed
    let last = url.last!
    let badSignature = String(url.dropLast()) + (last == "0" ? "1" : "0")
    #expect(try get(badSignature).code == "403")
    // a longer life than was signed
    #expect(
      try get(url.replacingOccurrences(of: "X-Amz-Expires=300", with: "X-Amz-Expires=3000")).code == "403")
    // another object under the same signature
    let otherKey = SigV4Signer.encodePath(store.client.key("other.bin"))
    #expect(try get(url.replacingOccurrences(of: SigV4Signer.encodePath(key), with: otherKey)).code == "403")
    // expired: signed ten minutes ago for one minute
    let expired = store.client.presignedURL(
      .GET, key: key, expires: 60, date: Date().addingTimeInterval(-600))
    #expect(try get(expired).code == "403")

    // botocore signs the same request, at its own time, with the same signature (its presign
    // is SigV2 for custom endpoints unless the profile asks for s3v4)
    try Data("[default]\ns3 =\n    signature_version = s3v4\n".utf8).write(
      to: URL(fileURLWithPath: dir.file("aws-config")))
    let env = [
      "AWS_ACCESS_KEY_ID": server.accessKey, "AWS_SECRET_ACCESS_KEY": server.secretKey,
      "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": dir.file("aws-config"),
      "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    ]
    let cli = try runProcess(
      "aws",
      [
        "--endpoint-url", server.endpoint, "s3", "presign", "s3://\(store.settings.bucket)/\(key)",
        "--expires-in", "300",
      ], environment: env)
    #expect(cli.status == 0, "\(String(decoding: cli.stderr, as: UTF8.self))")
    let theirs = String(decoding: cli.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    func parameter(_ name: String, _ url: String) -> String? {
      URLComponents(string: url)?.queryItems?.first { $0.name == name }?.value
    }
    let stamp = try #require(parameter("X-Amz-Date", theirs), "\(theirs)")
    let formatter = DateFormatter()
    formatter.locale = Locale(identifier: "en_US_POSIX")
    formatter.timeZone = TimeZone(identifier: "UTC")
    formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
    let at = try #require(formatter.date(from: stamp))
    let ours = store.client.presignedURL(.GET, key: key, expires: 300, date: at)
    #expect(
      parameter("X-Amz-Signature", ours) == parameter("X-Amz-Signature", theirs),
      "ours \(ours)\ncli \(theirs)")
    #expect(try get(theirs).code == "200")
  }

  /// The AWS CLI, an independent client, reads what we wrote byte for byte, and we read what
  /// it wrote.
  @Test func awsCLIInterop() throws {
    guard let server = S3TestServer.seaweed else { return skipNote("aws CLI interop") }
    let store = try server.store(prefix: "cli test")
    let data = pattern(S3Settings.minPartSize + 777, seed: 9)
    let upload = try store.put("ours.bin")
    try data.withUnsafeBytes { try upload.write($0) }
    try upload.finish()
    let dir = TempDir("aws-cli")
    let env = [
      "AWS_ACCESS_KEY_ID": server.accessKey, "AWS_SECRET_ACCESS_KEY": server.secretKey,
      "AWS_DEFAULT_REGION": "us-east-1",
    ]
    let bucket = "s3://\(store.settings.bucket)/cli test"
    let down = try runProcess(
      "aws", ["--endpoint-url", server.endpoint, "s3", "cp", "\(bucket)/ours.bin", dir.file("got.bin")],
      environment: env)
    #expect(down.status == 0, "\(String(decoding: down.stderr, as: UTF8.self))")
    #expect(FileManager.default.contents(atPath: dir.file("got.bin")) == Data(data))
    try Data(data.reversed()).write(to: URL(fileURLWithPath: dir.file("theirs.bin")))
    let up = try runProcess(
      "aws", ["--endpoint-url", server.endpoint, "s3", "cp", dir.file("theirs.bin"), "\(bucket)/theirs.bin"],
      environment: env)
    #expect(up.status == 0, "\(String(decoding: up.stderr, as: UTF8.self))")
    #expect(try store.read("theirs.bin") == Data(data.reversed()))
  }
}

/// A store whose first calls fail transiently (Kopia's faulty-storage helper is the model).
final class FlakyStore: BlobStore, @unchecked Sendable {
  let base: BlobStore
  var failuresLeft: Int
  var calls = 0
  init(_ base: BlobStore, failures: Int) {
    self.base = base
    failuresLeft = failures
  }
  func fault() throws {
    calls += 1
    if failuresLeft > 0 {
      failuresLeft -= 1
      throw TransientStorageError(BackupError(.storage, "503 SlowDown (injected)"))
    }
  }
  var location: String { base.location }
  func put(_ name: String) throws -> BlobUpload {
    try fault()
    return try base.put(name)
  }
  func put(_ name: String, data: Data) throws {
    try fault()
    try base.put(name, data: data)
  }
  func open(_ name: String) throws -> RandomAccessInput {
    try fault()
    return try base.open(name)
  }
  func stat(_ name: String) throws -> Int64? {
    try fault()
    return try base.stat(name)
  }
  func list(prefix: String) throws -> [BlobInfo] {
    try fault()
    return try base.list(prefix: prefix)
  }
  func delete(_ name: String) throws {
    try fault()
    try base.delete(name)
  }
}

@Suite struct StoreWrapperTests {
  @Test func transientFailuresAreRetriedThenSurface() throws {
    let dir = TempDir("retry")
    let flaky = FlakyStore(LocalStore(directory: dir.path), failures: 3)
    let store = RetryingStore(flaky, policy: RetryPolicy(attempts: 4, baseDelay: 0.001))
    try store.put("a", data: Data("1".utf8))
    #expect(flaky.calls == 4)
    flaky.failuresLeft = 10
    let e = try #require(throws: BackupError.self) { _ = try store.stat("a") }
    #expect(e.description.contains("SlowDown"))
    #expect(flaky.calls == 8)
    // a permanent error is not retried
    flaky.failuresLeft = 0
    let before = flaky.calls
    #expect(throws: BackupError.self) { _ = try store.open("missing") }
    #expect(flaky.calls == before + 1)
  }

  @Test func backoffGrowsWithJitterAndACap() {
    let p = RetryPolicy(attempts: 10, baseDelay: 0.1, maxDelay: 1)
    for attempt in 1...8 {
      let cap = min(1, 0.1 * pow(2, Double(attempt - 1)))
      let d = p.delay(beforeRetry: attempt)
      #expect(d >= cap / 2 && d <= cap)
    }
  }

  @Test func rateLimitHoldsTransfersToTheRate() throws {
    let dir = TempDir("rate")
    let store = RateLimitedStore(LocalStore(directory: dir.path), bytesPerSecond: 2 << 20)
    let started = Date()
    let upload = try store.put("x")
    let chunk = [UInt8](repeating: 7, count: 64 * 1024)
    for _ in 0..<16 { try chunk.withUnsafeBytes { try upload.write($0) } }  // 1 MiB at 2 MiB/s
    try upload.finish()
    let elapsed = Date().timeIntervalSince(started)
    #expect(elapsed >= 0.4 && elapsed < 3, "\(elapsed)")
  }
}

/// A proxy in front of SeaweedFS that answers 503 SlowDown for a while: every call (each part
/// of a multipart upload alone) is retried and succeeds.
@Suite struct ThrottlingTests {
  /// A refused connection fails each attempt at once, so a dead endpoint is reported after the
  /// retry policy's backoff (about 8 s with the defaults), not after a connect timeout per attempt
  /// (async-http-client's own connection retries made that 10 s each: a minute in all).
  @Test func aDeadEndpointFailsAfterTheRetriesNotAfterConnectTimeouts() throws {
    let policy = RetryPolicy(attempts: 3, baseDelay: 0.01, maxDelay: 0.02)
    let dead = try S3Store(
      settings: S3Settings(bucket: "dead-endpoint", endpoint: "http://127.0.0.1:1"),
      credentials: AWSCredentials(accessKeyId: "AKIDEAD", secretAccessKey: "dead-secret", source: "test"),
      partRetry: policy)
    let started = Date()
    let error = try #require(throws: BackupError.self) {
      try RetryingStore(dead, policy: policy).stat("backup-x")
    }
    #expect(error.description.contains("cannot reach S3 at http://127.0.0.1:1"), "\(error)")
    #expect(Date().timeIntervalSince(started) < 8, "an attempt waited for a connect timeout")
    #expect(throws: BackupError.self) { try dead.unfinishedUploads() }
  }

  @Test func slowDownIsRetriedUntilItSucceeds() throws {
    guard let server = S3TestServer.seaweed else { return skipNote("503 SlowDown proxy") }
    let upstream = try #require(URL(string: server.endpoint))
    let proxy = try FlakyProxy(upstream: "\(upstream.host!):\(upstream.port!)", fails: 6)
    defer { proxy.stop() }
    let port = proxy.port
    let direct = try server.store()
    let policy = RetryPolicy(attempts: 8, baseDelay: 0.01, maxDelay: 0.05)
    let viaProxy = try S3Store(
      settings: S3Settings(
        bucket: direct.settings.bucket, endpoint: "http://127.0.0.1:\(port)",
        partSize: S3Settings.minPartSize,
        parallel: 2),
      credentials: server.credentials, partRetry: policy)
    let store = RetryingStore(viaProxy, policy: policy)
    let data = pattern(S3Settings.minPartSize * 2 + 99, seed: 3)
    let upload = try store.put("backup-throttled.bin")
    try data.withUnsafeBytes { try upload.write($0) }
    try upload.finish()
    #expect(try store.read("backup-throttled.bin") == Data(data))
    #expect(try direct.read("backup-throttled.bin") == Data(data))
    #expect(try direct.pendingUploads().isEmpty)
  }
}
