import BackupModel
import Foundation
import TestSupport
import Testing

@testable import BackupCloud

@Suite struct SigV4Tests {
  /// The credentials and region of AWS's documented examples.
  static let awsExampleSigner = SigV4Signer(
    credentials: AWSCredentials(
      accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
      source: "test"),
    region: "us-east-1")

  /// The "GET Object" example of AWS's SigV4 documentation (header-based auth, S3).
  @Test func awsDocumentedGetObjectExample() {
    let signer = Self.awsExampleSigner
    let date = Date(timeIntervalSince1970: 1_369_353_600)  // 2013-05-24T00:00:00Z
    let h = signer.sign(
      method: "GET", path: "/test.txt", query: [],
      headers: ["Host": "examplebucket.s3.amazonaws.com", "Range": "bytes=0-9"],
      payloadHash: SigV4Signer.emptyPayloadHash, date: date)
    #expect(h["x-amz-date"] == "20130524T000000Z")
    #expect(
      h["Authorization"]
        == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )
  }

  /// The presigned URL example of AWS's SigV4 documentation (query-string auth, S3).
  @Test func awsDocumentedPresignedURLExample() {
    let signer = Self.awsExampleSigner
    let query = signer.presign(
      method: "GET", path: "/test.txt", host: "examplebucket.s3.amazonaws.com", expires: 86400,
      date: Date(timeIntervalSince1970: 1_369_353_600))
    #expect(
      SigV4Signer.canonicalQuery(Array(query.dropLast()))
        == "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
    )
    #expect(query.last?.0 == "X-Amz-Signature")
    #expect(query.last?.1 == "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404")
  }

  @Test func uriAndQueryEncoding() {
    #expect(
      SigV4Signer.encodePath("my backups/db 1/a+b=c é~x.json")
        == "my%20backups/db%201/a%2Bb%3Dc%20%C3%A9~x.json")
    #expect(SigV4Signer.percentEncode("a/b", keepSlash: false) == "a%2Fb")
    #expect(
      SigV4Signer.canonicalQuery([("prefix", "x y/"), ("list-type", "2"), ("uploads", "")])
        == "list-type=2&prefix=x%20y%2F&uploads=")
  }

  @Test func xmlTextIsDecoded() {
    let doc =
      "<R><Contents><Key>a&amp;b &#233;&lt;</Key><Size>3</Size></Contents><Contents><Key>c</Key></Contents></R>"
    #expect(XML.all("Key", in: doc) == ["a&b é<", "c"])
    #expect(XML.first("Size", in: doc) == "3")
  }

  @Test func credentialsFromEnvironmentAndProfiles() throws {
    let dir = TempDir("aws-profiles")
    let creds = dir.file("credentials")
    let config = dir.file("config")
    try
      "[default]\naws_access_key_id = AKDEFAULT\naws_secret_access_key = s1\n\n[dev]\naws_access_key_id=AKDEV\naws_secret_access_key=s2\naws_session_token = tok\n"
      .write(toFile: creds, atomically: true, encoding: .utf8)
    try "[profile ops]\nregion = eu-west-3\naws_access_key_id = AKOPS\naws_secret_access_key = s3\n"
      .write(toFile: config, atomically: true, encoding: .utf8)
    let base = ["AWS_SHARED_CREDENTIALS_FILE": creds, "AWS_CONFIG_FILE": config, "HOME": dir.path]
    let env = try AWSCredentials.resolve(
      environment: base.merging(["AWS_ACCESS_KEY_ID": "AKENV", "AWS_SECRET_ACCESS_KEY": "s0"]) { $1 })
    #expect(env.accessKeyId == "AKENV" && env.source.contains("AWS_ACCESS_KEY_ID"))
    #expect(try AWSCredentials.resolve(environment: base).accessKeyId == "AKDEFAULT")
    let dev = try AWSCredentials.resolve(environment: base.merging(["AWS_PROFILE": "dev"]) { $1 })
    #expect(dev.accessKeyId == "AKDEV" && dev.sessionToken == "tok" && dev.source.contains("profile dev"))
    let ops = try AWSCredentials.resolve(environment: base.merging(["AWS_PROFILE": "ops"]) { $1 })
    #expect(ops.accessKeyId == "AKOPS")
    #expect(AWSCredentials.region(environment: base.merging(["AWS_PROFILE": "ops"]) { $1 }) == "eu-west-3")
    // the secret never shows in a description or an error
    #expect(!"\(dev)".contains("s2"))
    #expect(throws: BackupError.self) {
      try AWSCredentials.resolve(environment: base.merging(["AWS_PROFILE": "nope"]) { $1 })
    }
    #expect(throws: BackupError.self) {
      try AWSCredentials.resolve(environment: base.merging(["AWS_ACCESS_KEY_ID": "AK"]) { $1 })
    }
  }
}
