import BackupModel
import Foundation

/// A value handed to another thread that only that thread uses from then on (a connection).
final class MyHandOff<T>: @unchecked Sendable {
  let value: T
  init(_ value: T) { self.value = value }
}

/// A bounded queue of part events between one producer thread and one consumer thread. The
/// producer blocks while `capacity` bytes are queued, so memory stays bounded however far ahead
/// it is; nothing ever goes to disk (a backup may be encrypted: no plaintext temp files).
/// All channels of one dump or restore share one condition, so a thread can wait for "any".
final class MyChunkChannel: @unchecked Sendable {
  enum Item {
    case begin(PartKind, String?)
    case bytes([UInt8])
    case end(Int64?, String?)
  }

  private let cond: NSCondition
  private let capacity: Int
  private var items: [Item] = []
  private var head = 0
  private var queued = 0
  private var finished = false
  private var failure: Error?
  private var cancelled = false
  private var consumedFlag = false

  init(capacity: Int, condition: NSCondition) {
    self.capacity = capacity
    self.cond = condition
  }

  static func size(_ item: Item) -> Int {
    if case .bytes(let b) = item { return b.count }
    return 0
  }

  /// Appends an item, waiting while the queue is full; throws once the consumer gave up.
  func push(_ item: Item) throws {
    cond.lock()
    defer { cond.unlock() }
    while queued >= capacity && !cancelled { cond.wait() }
    if cancelled { throw CancellationError() }
    queued += MyChunkChannel.size(item)
    items.append(item)
    cond.broadcast()
  }

  /// Whether `push` would not wait (the caller holds no lock: an estimate for the pump loop).
  var hasRoom: Bool {
    cond.lock()
    defer { cond.unlock() }
    return queued < capacity && !cancelled
  }

  /// The next item, waiting for one; nil once the producer finished and all were taken. Throws
  /// the producer's error, or `CancellationError` after `cancel`.
  func pop() throws -> Item? {
    cond.lock()
    defer { cond.unlock() }
    while head == items.count && !finished && !cancelled { cond.wait() }
    if cancelled { throw CancellationError() }
    if head == items.count {
      if let failure { throw failure }
      return nil
    }
    let item = items[head]
    head += 1
    queued -= MyChunkChannel.size(item)
    if head > 64 && head * 2 > items.count {
      items.removeFirst(head)
      head = 0
    }
    cond.broadcast()
    return item
  }

  /// The producer is done (with `error` when it failed).
  func finish(_ error: Error? = nil) {
    cond.lock()
    finished = true
    failure = error
    cond.broadcast()
    cond.unlock()
  }

  /// Set by the consumer when it has handled everything (restore: the table is committed).
  var consumed: Bool {
    cond.lock()
    defer { cond.unlock() }
    return consumedFlag
  }

  func markConsumed() {
    cond.lock()
    consumedFlag = true
    cond.broadcast()
    cond.unlock()
  }

  /// Stops both sides: a waiting `push` or `pop` throws.
  func cancel() {
    cond.lock()
    cancelled = true
    cond.broadcast()
    cond.unlock()
  }
}

/// The producer side of a channel as a `PartSink` (a table writer on a worker thread).
final class MyChannelSink: PartSink {
  let channel: MyChunkChannel
  init(_ channel: MyChunkChannel) { self.channel = channel }
  func beginPart(kind: PartKind, table: String?) throws { try channel.push(.begin(kind, table)) }
  func write(_ bytes: UnsafeRawBufferPointer) throws { try channel.push(.bytes(Array(bytes))) }
  func write(array: [UInt8]) throws { try channel.push(.bytes(array)) }
  func endPart(rows: Int64?, contentChecksum: String?) throws {
    try channel.push(.end(rows, contentChecksum))
  }
}

/// The consumer side of a channel of raw bytes as a `ByteSource` (a table part on a restore
/// worker).
final class MyChannelSource: ByteSource {
  let channel: MyChunkChannel
  var pending: [UInt8] = []
  var offset = 0
  init(_ channel: MyChunkChannel) { self.channel = channel }

  func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
    while offset == pending.count {
      guard let item = try channel.pop() else { return 0 }
      if case .bytes(let b) = item {
        pending = b
        offset = 0
      }
    }
    let n = min(buffer.count, pending.count - offset)
    pending.withUnsafeBytes { src in
      buffer.baseAddress!.copyMemory(from: src.baseAddress! + offset, byteCount: n)
    }
    offset += n
    return n
  }
}

/// `--jobs N` dump: N worker connections, each in its own `START TRANSACTION WITH CONSISTENT
/// SNAPSHOT` taken under the one global read lock, take tables in order and stream them into
/// per-table bounded channels; the calling thread writes the channels to the sink in table order.
/// A worker runs ahead (tables N+1, …) only as far as its channel's capacity.
struct MyParallelDump {
  let writers: [MyTableWriter]
  let connections: [MyConnection]
  /// Bytes a worker may queue ahead of the writer for one table.
  var channelCapacity = 4 << 20

  func run(to sink: PartSink, written: (Int) throws -> Void) throws {
    let cond = NSCondition()
    let channels = writers.map { _ in MyChunkChannel(capacity: channelCapacity, condition: cond) }
    let next = MyCounter()
    let group = DispatchGroup()
    let writers = self.writers
    for c in connections {
      let connection = MyHandOff(c)
      group.enter()
      Thread.detachNewThread {
        defer { group.leave() }
        while true {
          let i = next.take()
          guard i < writers.count else { return }
          do {
            try writers[i].write(connection.value, to: MyChannelSink(channels[i]))
            channels[i].finish()
          } catch {
            // this connection may be unusable: other workers go on, the writer reports the error
            channels[i].finish(error)
            return
          }
        }
      }
    }
    defer {
      for ch in channels { ch.cancel() }
      group.wait()
    }
    for (i, channel) in channels.enumerated() {
      while let item = try channel.pop() {
        switch item {
        case .begin(let kind, let table): try sink.beginPart(kind: kind, table: table)
        case .bytes(let b): try b.withUnsafeBytes { try sink.write($0) }
        case .end(let rows, let checksum): try sink.endPart(rows: rows, contentChecksum: checksum)
        }
      }
      try written(i)
    }
  }
}

/// A shared counter handing out 0, 1, 2, … to threads.
final class MyCounter: @unchecked Sendable {
  private let lock = NSLock()
  private var n = 0
  func take() -> Int {
    lock.withLock {
      defer { n += 1 }
      return n
    }
  }
}

/// The table parts handed to restore workers, and the first failure among them.
final class MyRestoreJobs: @unchecked Sendable {
  let cond: NSCondition
  private var queue: [(Int, MyChunkChannel)] = []
  private var closed = false
  private(set) var failure: Error?

  init(condition: NSCondition) { cond = condition }

  func add(_ part: Int, _ channel: MyChunkChannel) {
    cond.lock()
    queue.append((part, channel))
    cond.broadcast()
    cond.unlock()
  }

  /// The next table for a worker; nil once closed and empty.
  func next() -> (Int, MyChunkChannel)? {
    cond.lock()
    defer { cond.unlock() }
    while queue.isEmpty && !closed { cond.wait() }
    return queue.isEmpty ? nil : queue.removeFirst()
  }

  func close() {
    cond.lock()
    closed = true
    cond.broadcast()
    cond.unlock()
  }

  func fail(_ error: Error) {
    cond.lock()
    if failure == nil { failure = error }
    cond.broadcast()
    cond.unlock()
  }

  var firstFailure: Error? {
    cond.lock()
    defer { cond.unlock() }
    return failure
  }
}

/// `--jobs N` restore: after the schema part, table parts load over N more connections (each its
/// own session with foreign-key and unique checks off, each table one transaction). Only the
/// calling thread reads the backup (the `PartOpener` is not shared): it decodes up to 2N table
/// parts at once, round-robin, into bounded channels that the workers turn into INSERTs. On the
/// first failure every worker stops (its open transaction rolls back) and the error goes to
/// `restoreImpl`, which drops what the restore created, as after a sequential failure.
struct MyParallelRestore {
  let session: MyRestoreSession
  let engine: MariaDBEngine
  let tableParts: [Int]
  var channelCapacity = 4 << 20

  func run(parts: PartOpener) throws {
    let request = session.request
    let jobs = request.jobs
    var sessions: [MyRestoreSession] = []
    for _ in 0..<jobs {
      let s = MyRestoreSession(db: try engine.connect(), request: request)
      try s.configureSession()
      sessions.append(s)
    }
    let cond = NSCondition()
    let queue = MyRestoreJobs(condition: cond)
    let group = DispatchGroup()
    for s in sessions {
      let worker = MyHandOff(s)
      group.enter()
      Thread.detachNewThread {
        defer { group.leave() }
        while let (index, channel) = queue.next() {
          do {
            try worker.value.loadTable(
              reader: InputReader(MyChannelSource(channel)), table: request.parts[index].table)
            channel.markConsumed()
          } catch {
            queue.fail(error)
            channel.cancel()
            return
          }
        }
      }
    }
    var active: [(reader: ByteSource, channel: MyChunkChannel, eof: Bool)] = []
    defer {
      queue.close()
      for a in active { a.channel.cancel() }
      group.wait()
    }
    var next = 0
    var chunk = [UInt8](repeating: 0, count: 256 * 1024)
    while true {
      if let f = queue.firstFailure { throw f }
      active.removeAll { $0.channel.consumed }
      if active.isEmpty && next == tableParts.count { break }
      while active.count < 2 * jobs && next < tableParts.count {
        let channel = MyChunkChannel(capacity: channelCapacity, condition: cond)
        active.append((try parts.open(tableParts[next]), channel, false))
        queue.add(tableParts[next], channel)
        next += 1
      }
      var progressed = false
      for k in active.indices where !active[k].eof && active[k].channel.hasRoom {
        let n: Int
        do {
          n = try chunk.withUnsafeMutableBytes { try active[k].reader.read(into: $0) }
        } catch {
          active[k].channel.finish(error)
          throw error
        }
        if n == 0 {
          active[k].channel.finish()
          active[k].eof = true
        } else {
          try active[k].channel.push(.bytes(Array(chunk[0..<n])))
        }
        progressed = true
      }
      if !progressed {
        cond.lock()
        _ = cond.wait(until: Date(timeIntervalSinceNow: 0.05))
        cond.unlock()
      }
    }
    // every table is loaded: gather the workers' reports in part order
    let order = Dictionary(
      uniqueKeysWithValues: request.parts.enumerated().compactMap { i, p in p.table.map { ($0, i) } })
    for s in sessions {
      session.report.statementsExecuted += s.report.statementsExecuted
      session.report.statementsFailed += s.report.statementsFailed
      session.report.errors += s.report.errors.prefix(max(0, 10 - session.report.errors.count))
      session.report.tables += s.report.tables
    }
    session.report.tables.sort { (order[$0.name] ?? 0) < (order[$1.name] ?? 0) }
  }
}
