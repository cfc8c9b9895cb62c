import Foundation
import TestSupport
import Testing

/// `connection test` and `--database <connection name>` against the real servers the test
/// scripts start (scripts/pg-test-server.sh, scripts/mariadb-test-server.sh).
@Suite struct ConnectionServerTests {
  static let environment = ProcessInfo.processInfo.environment

  @Test(arguments: [("AI_SHELL_TEST_PG_URL", "postgres"), ("AI_SHELL_TEST_MARIADB_URL", "mysql")])
  func connectionTestAgainstARealServer(variable: String, engine: String) throws {
    guard var url = Self.environment[variable] else {
      print("skipped: \(variable) not set")
      return
    }
    if url.hasSuffix("/") { url += "mysql" }  // a MySQL URL names its database
    let cli = AIShellRunner()
    let direct = try cli.run(["connection", "test", url])
    #expect(direct.status == 0, "\(direct.stderr)")
    #expect(direct.stdout.contains("engine    \(engine)"))
    #expect(direct.stdout.contains("version "))
    #expect(direct.stdout.contains("tables "))
    // stored with its password moved out of the config, tested by name, never shown
    let password = try #require(URLComponents(string: url)?.password)
    #expect(try cli.run(["connection", "add", "main", url, "--test"]).status == 0)
    let byName = try cli.run(["connection", "test", "main"])
    #expect(byName.status == 0, "\(byName.stderr)")
    let list = try cli.run(["connection", "list", "--json"])
    let config = try String(contentsOfFile: cli.configPath, encoding: .utf8)
    for text in [direct.stdout, byName.stdout, list.stdout, config] {
      #expect(!text.contains(password), "the password leaked")
    }
    // a wrong password is one clear line without the password
    let wrong = url.replacingOccurrences(of: ":\(password)@", with: ":not-the-password@")
    let refused = try cli.run(["connection", "test", wrong])
    #expect(refused.status == 5)
    #expect(!refused.stderr.contains("not-the-password"))
    #expect(refused.stderr.split(separator: "\n").count == 1)
  }

  @Test func backupCreateTakesAPostgresConnectionName() throws {
    guard let url = Self.environment["AI_SHELL_TEST_PG_URL"] else {
      print("skipped: AI_SHELL_TEST_PG_URL not set")
      return
    }
    let cli = AIShellRunner()
    let db = "ai_shell_conn_\(UUID().uuidString.prefix(8).lowercased())"
    let admin = try shell("psql '\(url)' -v ON_ERROR_STOP=1 -qc 'CREATE DATABASE \(db)'")
    #expect(admin.status == 0, "\(admin.stderr)")
    defer { _ = try? shell("psql '\(url)' -qc 'DROP DATABASE IF EXISTS \(db)'") }
    let dbURL = url.replacingOccurrences(of: "/postgres", with: "/\(db)")
    #expect(
      try shell("psql '\(dbURL)' -qc 'CREATE TABLE t(x int); INSERT INTO t VALUES (1),(2)'").status == 0)
    #expect(try cli.run(["connection", "add", "shop", dbURL]).status == 0)
    let r = try cli.run(["backup", "create", "-d", "shop", "--json"])
    #expect(r.status == 0, "\(r.stderr)")
    let obj = try #require(r.json as? [String: Any])
    #expect(obj["engine"] as? String == "postgres")
    let tables = try #require(obj["tables"] as? [[String: Any]])
    #expect(tables.first { $0["name"] as? String == "public.t" }?["rows"] as? Int == 2)
    // verify --test reaches the server through the manifest's password-free location: the
    // password kept only in the connection's secrets file must still be used
    let id = try #require(obj["id"] as? String)
    let verified = try cli.run(["backup", "verify", id, "--test"])
    #expect(verified.status == 0, "\(verified.stdout) \(verified.stderr)")
    #expect(verified.stdout.contains("verified"))
  }
}
