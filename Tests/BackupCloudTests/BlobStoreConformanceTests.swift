import BackupModel
import BackupStorage
import Foundation
import TestSupport
import Testing

@testable import BackupCloud

/// A test S3 server from `scripts/s3-test-server.sh env`.
struct S3TestServer: Sendable {
  var name: String
  var endpoint: String
  var accessKey: String
  var secretKey: String

  static func from(_ prefix: String, _ name: String) -> S3TestServer? {
    let env = ProcessInfo.processInfo.environment
    guard let ep = env["\(prefix)_ENDPOINT"], let ak = env["\(prefix)_ACCESS_KEY"],
      let sk = env["\(prefix)_SECRET_KEY"]
    else { return nil }
    return S3TestServer(name: name, endpoint: ep, accessKey: ak, secretKey: sk)
  }

  static let seaweed = from("AI_SHELL_TEST_S3", "seaweedfs")
  static let moto = from("AI_SHELL_TEST_MOTO", "moto")
  static var all: [S3TestServer] { [seaweed, moto].compactMap { $0 } }

  var credentials: AWSCredentials {
    AWSCredentials(accessKeyId: accessKey, secretAccessKey: secretKey, source: "the test environment")
  }

  /// A store on a new bucket of its own.
  func store(
    prefix: String = "", partSize: Int = S3Settings.minPartSize, parallel: Int = 3, secret: String? = nil,
    createBucket: Bool = true, storageClass: String? = nil, sse: String? = nil, retry: RetryPolicy = .none,
    checksum: S3Checksum = .md5
  ) throws -> S3Store {
    let bucket = "t-" + UUID().uuidString.prefix(13).lowercased()
    let settings = S3Settings(
      bucket: bucket, prefix: prefix, endpoint: endpoint, storageClass: storageClass,
      serverSideEncryption: sse,
      partSize: partSize, parallel: parallel, checksum: checksum)
    var creds = credentials
    if let secret { creds.secretAccessKey = secret }
    let s = try S3Store(settings: settings, credentials: creds, partRetry: retry)
    if createBucket { try s.createBucket() }
    return s
  }
}

func skipNote(_ what: String) {
  print("skipped: \(what) (run scripts/s3-test-server.sh start and eval its env)")
}

/// Deterministic bytes that differ at every offset (a misplaced range shows).
func pattern(_ count: Int, seed: UInt64 = 1) -> [UInt8] {
  var x = seed &* 0x9E37_79B9_7F4A_7C15
  return (0..<count).map { _ in
    x ^= x << 13
    x ^= x >> 7
    x ^= x << 17
    return UInt8(truncatingIfNeeded: x)
  }
}

/// Reads `length` bytes at `offset` through the store's ranged get, in reads of `chunk`.
func readRange(_ input: RandomAccessInput, _ offset: Int64, _ length: Int, chunk: Int = 100_000) throws
  -> [UInt8]
{
  var out: [UInt8] = []
  var buf = [UInt8](repeating: 0, count: chunk)
  while out.count < length {
    let want = min(chunk, length - out.count)
    let n = try buf.withUnsafeMutableBytes {
      try input.read(
        at: offset + Int64(out.count), into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<want]))
    }
    if n == 0 { break }
    out += buf[0..<n]
  }
  return out
}

/// The one suite every backend passes (restic's backend tests are the model).
func checkConformance(_ store: BlobStore, bigSize: Int) throws {
  // small whole puts, stat, read, overwrite
  try store.put("backup-a.manifest.json", data: Data("hello".utf8))
  #expect(try store.read("backup-a.manifest.json") == Data("hello".utf8))
  #expect(try store.stat("backup-a.manifest.json") == 5)
  try store.put("backup-a.manifest.json", data: Data("hello, again".utf8))
  #expect(try store.read("backup-a.manifest.json") == Data("hello, again".utf8))
  #expect(try store.stat("backup-missing") == nil)
  #expect {
    _ = try store.open("backup-missing")
  } throws: { ($0 as? BackupError)?.status == .notFound }

  // a streamed put in uneven writes, read back whole and by ranges
  let data = pattern(bigSize)
  let upload = try store.put("backup-a.sql.zst")
  var at = 0
  var step = 1
  while at < data.count {
    let n = min(step, data.count - at)
    try data[at..<at + n].withUnsafeBytes { try upload.write($0) }
    at += n
    step = step * 3 + 7
  }
  try upload.finish()
  #expect(try store.stat("backup-a.sql.zst") == Int64(bigSize))
  let input = try store.open("backup-a.sql.zst")
  #expect(input.size == Int64(bigSize))
  #expect(try readRange(input, 0, bigSize, chunk: 1 << 20) == data)
  for (offset, length) in [(0, 1), (bigSize - 10, 10), (bigSize / 3, 70_001), (17, 5)] {
    #expect(try readRange(input, Int64(offset), length) == Array(data[offset..<offset + length]), "\(offset)")
  }
  var tail = [UInt8](repeating: 0, count: 16)
  #expect(try tail.withUnsafeMutableBytes { try input.read(at: Int64(bigSize), into: $0) } == 0)

  // an empty object
  let empty = try store.put("backup-empty.bin")
  try empty.finish()
  #expect(try store.stat("backup-empty.bin") == 0)

  // an aborted upload leaves nothing
  let aborted = try store.put("backup-aborted.bin")
  try data[0..<min(1000, bigSize)].withUnsafeBytes { try aborted.write($0) }
  aborted.abort()
  #expect(try store.stat("backup-aborted.bin") == nil)

  // listing by prefix, sorted, with sizes
  try store.put("other.txt", data: Data("x".utf8))
  let listed = try store.list(prefix: "backup-")
  #expect(
    listed == [
      BlobInfo(name: "backup-a.manifest.json", size: 12),
      BlobInfo(name: "backup-a.sql.zst", size: Int64(bigSize)),
      BlobInfo(name: "backup-empty.bin", size: 0),
    ])
  #expect(try store.list(prefix: "").map(\.name).contains("other.txt"))

  // delete (a missing object is fine)
  try store.delete("backup-a.sql.zst")
  try store.delete("backup-a.sql.zst")
  #expect(try store.stat("backup-a.sql.zst") == nil)
  #expect(try store.list(prefix: "backup-a").map(\.name) == ["backup-a.manifest.json"])

  // names that would leave the store are refused
  #expect(throws: BackupError.self) { try store.put("../x", data: Data()) }
}

@Suite struct BlobStoreConformanceTests {
  @Test func localDirectory() throws {
    let dir = TempDir("blobstore")
    try checkConformance(LocalStore(directory: dir.file("store")), bigSize: 3 * 1024 * 1024 + 5)
  }

  @Test func localThroughRetryAndRateLimitWrappers() throws {
    let dir = TempDir("blobstore")
    let store = RateLimitedStore(
      RetryingStore(LocalStore(directory: dir.file("store"))), bytesPerSecond: 1 << 30)
    try checkConformance(store, bigSize: 200_003)
  }

  /// Multipart (three parts of 5 MiB, the last short) under a prefix; on SeaweedFS a nested one
  /// with spaces. moto's signature check wrongly refuses a list whose prefix parameter holds a
  /// space or a slash (the AWS CLI's identical request is refused too), so on moto the store sits at the bucket root.
  @Test func s3Servers() throws {
    if S3TestServer.all.isEmpty { skipNote("S3 conformance") }
    for server in S3TestServer.all {
      let store = try server.store(prefix: server.name == "moto" ? "" : "/my backups/db 1/")
      try checkConformance(RetryingStore(store), bigSize: 2 * S3Settings.minPartSize + 12345)
      #expect(try store.pendingUploads().isEmpty, "\(server.name)")
    }
  }
}
