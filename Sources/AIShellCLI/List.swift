import ArgumentParser
import BackupCore
import BackupModel
import Foundation

extension Backup {
  struct List: ParsableCommand {
    enum Output: String, ExpressibleByArgument { case table, json, csv }
    enum SortKey: String, ExpressibleByArgument { case timestamp, size, database, name }
    enum Order: String, ExpressibleByArgument { case asc, desc }

    static let configuration = CommandConfiguration(
      abstract: "List backups (unfinished ones show as incomplete or in-progress).")

    @Option(name: .shortAndLong, help: "Only backups of this database (path or URL).")
    var database: String?

    @Option(help: "Only backups created on or after this UTC date (YYYY-MM-DD).")
    var after: String?

    @Option(help: "Only backups created before this UTC date (YYYY-MM-DD).")
    var before: String?

    @Option(help: "Only backups in this content format (sql, json, csv).")
    var format: DumpFormat?

    @Option(help: "Output format (--json is the same as --output json).")
    var output: Output = .table

    @Option(help: "Show at most N backups.")
    var limit: Int?

    @Option(help: "Sort key.")
    var sort: SortKey = .timestamp

    @Option(help: "Sort order (desc: newest or largest first).")
    var order: Order = .desc

    @OptionGroup var cloud: CloudOptions

    @OptionGroup var common: CommonOptions

    func validate() throws {
      if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
      _ = try dates()
    }

    private func dates() throws -> (Date?, Date?) {
      func parse(_ s: String?, _ flag: String) throws -> Date? {
        guard let s else { return nil }
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM-dd"
        f.isLenient = false
        guard s.count == 10, let d = f.date(from: s) else {
          throw ValidationError("\(flag) needs a date as YYYY-MM-DD, got \"\(s)\"")
        }
        return d
      }
      return (try parse(after, "--after"), try parse(before, "--before"))
    }

    func run() throws {
      let service = common.service()
      try cloud.apply(to: service, common: common)
      var items = try cloud.cloud ? service.listWithCloud() : service.list()
      let (afterDate, beforeDate) = try dates()
      if let database {
        let text = (try? common.resolveDatabase(database)) ?? database
        let wanted = (try? DatabaseLocator(text).location) ?? database
        items = items.filter { $0.database == wanted || $0.database == database }
      }
      if let afterDate { items = items.filter { ($0.createdAt ?? .distantPast) >= afterDate } }
      if let beforeDate { items = items.filter { ($0.createdAt ?? .distantFuture) < beforeDate } }
      if let format { items = items.filter { $0.format == format } }
      items.sort { a, b in
        let ascending: Bool
        switch sort {
        case .timestamp: ascending = (a.createdAt ?? .distantPast, a.id) < (b.createdAt ?? .distantPast, b.id)
        case .size: ascending = (a.sizeBytes ?? -1, a.id) < (b.sizeBytes ?? -1, b.id)
        case .database: ascending = (a.database ?? "", a.id) < (b.database ?? "", b.id)
        case .name: ascending = (a.name ?? "", a.id) < (b.name ?? "", b.id)
        }
        return order == .asc ? ascending : !ascending
      }
      if let limit { items = Array(items.prefix(limit)) }

      let mode = common.json ? .json : output
      switch mode {
      case .json:
        print(try Render.json(items))
      case .table, .csv:
        var header = [
          "ID", "NAME", "CREATED", "ENGINE", "FORMAT", "COMPRESSION", "SIZE", "TABLES", "STATUS", "DATABASE",
        ]
        if cloud.cloud { header.append("LOCATION") }
        let rows = items.map { s in
          [
            s.id, s.name ?? "", Render.date(s.createdAt), s.engine?.rawValue ?? "", s.format?.rawValue ?? "",
            s.compression?.rawValue ?? "",
            mode == .csv ? s.sizeBytes.map(String.init) ?? "" : Render.bytes(s.sizeBytes),
            s.status == .complete ? String(s.tables.count) : "", s.status.rawValue, s.database ?? "",
          ] + (cloud.cloud ? [s.location ?? ""] : [])
        }
        if mode == .csv {
          print(Render.csv(header, rows), terminator: "")
        } else if items.isEmpty {
          printStderr("no backups in \(service.store.directory)")
        } else {
          print(Render.table(header, rows))
        }
      }
    }
  }
}
