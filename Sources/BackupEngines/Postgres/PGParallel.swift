import BackupModel
import Foundation

/// One unit of work of a parallel dump: a whole table, or one range of a big table's heap pages
/// (`COPY (SELECT … WHERE ctid >= '(first,0)' AND ctid < '(end,0)') TO STDOUT`, a TID range scan
/// on PostgreSQL 14 and newer). The units of a table follow each other in page order and the
/// writer puts them into the table's one part in that order, so a split table's part holds the
/// same rows in the same (heap) order as one `COPY t TO STDOUT`.
struct PGDumpUnit: Sendable {
  var table: Int
  /// The heap pages of this unit; nil for the whole table. The last range of a table has no end.
  var pages: (first: Int64, end: Int64?)?
  var isFirst: Bool
  var isLast: Bool

  /// Tables of at least `2 * pagesPerUnit` pages are split into units of `pagesPerUnit` pages
  /// (4 MiB of heap each); a unit's encoded text is held until the writer reaches it, so memory
  /// stays at about lookahead × a unit's text.
  static let pagesPerUnit: Int64 = 512

  /// The units of `tables` in file order; `pages[i]` is table i's heap size in pages (nil: do not
  /// split it).
  static func plan(tables count: Int, pages: [Int64?]) -> [PGDumpUnit] {
    var units: [PGDumpUnit] = []
    for i in 0..<count {
      guard let n = pages[i], n >= 2 * pagesPerUnit else {
        units.append(PGDumpUnit(table: i, pages: nil, isFirst: true, isLast: true))
        continue
      }
      var first: Int64 = 0
      while first < n {
        let end = first + pagesPerUnit
        let last = end >= n
        units.append(
          PGDumpUnit(table: i, pages: (first, last ? nil : end), isFirst: first == 0, isLast: last))
        first = end
      }
    }
    return units
  }
}

/// The hand-over between parallel dump workers and the one writer (docs/ARCHITECTURE.md,
/// "Parallel PostgreSQL dumps"). Workers claim units (tables or page ranges of a big table) in
/// order, `lookahead` units ahead of the unit the writer is on, or further (up to
/// `maxUnitsAhead`) while the units not yet written hold less than `aheadBytes` in all (a
/// database of many small tables is copied while pg_dump still runs), and hand each unit's
/// encoded bytes over in chunks; a unit holds at most `capacity` bytes not yet written (its
/// worker waits beyond that). So memory is bounded by aheadBytes + lookahead × capacity
/// whatever the database size, nothing goes through a temporary file, and the units reach the
/// sink in order: the file does not depend on the timing.
final class PGParallelDump: @unchecked Sendable {
  enum Item {
    case data([UInt8])
    case end(RowSetChecksum)
    /// No worker could lock the unit's table: the writer copies it on the main connection.
    case writerCopies
  }

  private let cond = NSCondition()
  private var chunks: [[[UInt8]]]
  private var buffered: [Int]
  private var results: [RowSetChecksum?]
  private var handedOver: Set<Int> = []
  private var next = 0
  private var writerAt = 0
  private var bufferedTotal = 0
  private var failure: Error?
  let count: Int
  let lookahead: Int
  let capacity: Int
  let aheadBytes: Int
  static let maxUnitsAhead = 4096

  init(count: Int, lookahead: Int, capacity: Int = 8 << 20, aheadBytes: Int = 16 << 20) {
    self.count = count
    self.lookahead = max(1, lookahead)
    self.capacity = capacity
    self.aheadBytes = aheadBytes
    chunks = Array(repeating: [], count: count)
    buffered = Array(repeating: 0, count: count)
    results = Array(repeating: nil, count: count)
  }

  /// The next unit for a worker, or nil when there is none left or the dump failed.
  func claim() -> Int? {
    cond.lock()
    defer { cond.unlock() }
    while failure == nil && next < count && next >= writerAt + lookahead
      && (bufferedTotal >= aheadBytes || next >= writerAt + Self.maxUnitsAhead)
    {
      cond.wait()
    }
    guard failure == nil, next < count else { return nil }
    next += 1
    return next - 1
  }

  /// Hands a chunk of unit `i` to the writer; waits while the unit has `capacity` bytes pending.
  func put(_ i: Int, _ bytes: [UInt8]) throws {
    cond.lock()
    defer { cond.unlock() }
    while failure == nil && buffered[i] >= capacity { cond.wait() }
    if let failure { throw failure }
    chunks[i].append(bytes)
    buffered[i] += bytes.count
    bufferedTotal += bytes.count
    cond.broadcast()
  }

  func finish(_ i: Int, _ checksum: RowSetChecksum) {
    cond.lock()
    results[i] = checksum
    cond.broadcast()
    cond.unlock()
  }

  /// Unit `i` (nothing of it put yet) is the writer's to copy.
  func handToWriter(_ i: Int) {
    cond.lock()
    handedOver.insert(i)
    cond.broadcast()
    cond.unlock()
  }

  /// Stops everything: the first error is what every waiting side throws.
  func fail(_ error: Error) {
    cond.lock()
    if failure == nil { failure = error }
    cond.broadcast()
    cond.unlock()
  }

  /// The writer's next item of unit `i` (units are taken in order).
  func take(_ i: Int) throws -> Item {
    cond.lock()
    defer { cond.unlock() }
    if writerAt != i {
      writerAt = i
      cond.broadcast()
    }
    while true {
      if let failure { throw failure }
      if !chunks[i].isEmpty {
        let c = chunks[i].removeFirst()
        buffered[i] -= c.count
        bufferedTotal -= c.count
        cond.broadcast()
        return .data(c)
      }
      if let r = results[i] { return .end(r) }
      if handedOver.contains(i) { return .writerCopies }
      cond.wait()
    }
  }
}

/// A parallel dump whose workers are running (`PostgresEngine.startParallelDump`): `write`
/// hands its units to the sink in order, each table's units as one part; `stop` ends it with an
/// error instead. Either returns once every worker has stopped.
final class PGParallelRun {
  let shared: PGParallelDump
  let units: [PGDumpUnit]
  let tables: [PGTable]
  /// The thread that runs the workers and returns when all of them have stopped.
  let running: PGBackground<Void>
  /// Writes a unit no worker could lock (`PGParallelDump.Item.writerCopies`) into the sink.
  let copyOnMain: (PGDumpUnit, PartSink) throws -> RowSetChecksum

  init(
    shared: PGParallelDump, units: [PGDumpUnit], tables: [PGTable], running: PGBackground<Void>,
    copyOnMain: @escaping (PGDumpUnit, PartSink) throws -> RowSetChecksum
  ) {
    self.shared = shared
    self.units = units
    self.tables = tables
    self.running = running
    self.copyOnMain = copyOnMain
  }

  func write(to sink: PartSink) throws {
    do {
      var total = RowSetChecksum()
      for (i, unit) in units.enumerated() {
        if unit.isFirst {
          try sink.beginPart(kind: .table, table: tables[unit.table].name)
          total = RowSetChecksum()
        }
        var ended = false
        while !ended {
          switch try shared.take(i) {
          case .data(let bytes):
            try bytes.withUnsafeBytes { try sink.write($0) }
          case .end(let checksum):
            total.merge(checksum)
            ended = true
          case .writerCopies:
            total.merge(try copyOnMain(unit, sink))
            ended = true
          }
        }
        if unit.isLast { try sink.endPart(rows: total.rows, contentChecksum: total.finalizeHex()) }
      }
    } catch {
      stop(error)
      throw error
    }
    _ = try? running.result()  // the workers' errors reach the writer through `shared`
  }

  func stop(_ error: Error) {
    shared.fail(error)
    _ = try? running.result()
  }
}

/// The `PartSink` a dump worker's `OutputBuffer` writes into: one table of a `PGParallelDump`.
final class PGPipeSink: PartSink {
  let dump: PGParallelDump
  let index: Int
  init(_ dump: PGParallelDump, _ index: Int) {
    self.dump = dump
    self.index = index
  }
  func beginPart(kind: PartKind, table: String?) throws {}
  func write(_ bytes: UnsafeRawBufferPointer) throws { try dump.put(index, Array(bytes)) }
  func write(array: [UInt8]) throws { try dump.put(index, array) }
  func endPart(rows: Int64?, contentChecksum: String?) throws {}
}

/// A computation started on a background thread; `result()` waits for it.
final class PGBackground<T>: @unchecked Sendable {
  private let group = DispatchGroup()
  private var outcome: Result<T, Error>?
  private let body: () throws -> T

  init(_ body: @escaping () throws -> T) {
    self.body = body
    group.enter()
    let t = Thread { [self] in
      outcome = Result { try self.body() }
      group.leave()
    }
    t.start()
  }

  func result() throws -> T {
    group.wait()
    return try outcome!.get()
  }

  /// Whether the computation has ended (`result()` would not wait).
  var isFinished: Bool { group.wait(timeout: .now()) == .success }
}

/// The worker connections of a parallel dump, one per thread (each used by its thread only).
final class PGWorkers: @unchecked Sendable {
  let connections: [PGConnection]
  init(_ connections: [PGConnection]) { self.connections = connections }
}

/// Runs `body(worker)` on `count` threads and waits for all of them.
func runThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
  let group = DispatchGroup()
  for w in 0..<count {
    group.enter()
    let t = Thread {
      body(w)
      group.leave()
    }
    t.stackSize = 4 << 20
    t.start()
  }
  group.wait()
}

/// A `PartOpener` whose streams may be read from several threads: opening and every read take
/// one lock, so the backup file is read (and decoded, and decrypted) by one thread at a time,
/// while the database work of each stream runs in parallel.
final class PGLockedOpener: @unchecked Sendable {
  private let lock = NSLock()
  private let base: PartOpener
  init(_ base: PartOpener) { self.base = base }

  func open(_ index: Int) throws -> ByteSource {
    try lock.withLock { LockedSource(try base.open(index), lock) }
  }

  final class LockedSource: ByteSource {
    let source: ByteSource
    let lock: NSLock
    init(_ source: ByteSource, _ lock: NSLock) {
      self.source = source
      self.lock = lock
    }
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
      try lock.withLock { try source.read(into: buffer) }
    }
  }
}
