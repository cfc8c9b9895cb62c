import BackupModel
import CSHA256Lanes
import Foundation

/// Checks a whole payload against its SHA-256 chain (format version 4; docs/FORMAT.md, "Part
/// checksums") stretch by stretch: each stretch between two neighbouring checkpoints is hashed from
/// the first one's state and must arrive at the second's, and the last one, from the last
/// checkpoint to the end, must give the payload's SHA-256. Passing every stretch proves the
/// payload's SHA-256 exactly as one pass over it would, but the stretches do not depend on each
/// other, so up to 16 are hashed side by side by a multi-lane SHA-256 (`CSHA256Lanes`: 16 or 8
/// lanes with AVX-512, 8 with AVX2; one stretch at a time through OpenSSL elsewhere and when only
/// one or two are ready): about 3-4x the throughput of one OpenSSL stream on this project's CPUs.
///
/// It reads the payload through `input` and may run behind a writer of it: `advance(to:)` says how
/// much is readable, and a background thread checks stretches in batches as soon as they are
/// complete (while their bytes are still in the page cache). `finish()` checks the rest, waits,
/// and throws `.corrupt` naming the first stretch that failed.
public final class PayloadChainCheck: @unchecked Sendable {
  private struct Stretch {
    var start: Int64
    var end: Int64
    var startWords: [UInt32]
    /// The state the stretch must end in; nil for the last stretch (the payload's SHA-256).
    var endWords: [UInt32]?
  }

  /// A stretch being hashed: its state so far and its next bytes (read into `buffer`, or mapped
  /// from a local file: `mapping`), of which `consumed` are hashed.
  private struct Lane {
    var stretch: Int
    var position: Int64
    var words: [UInt32]
    var buffer: UnsafeMutableRawBufferPointer?
    var mapping: MappedBytes?
    var bytes = UnsafeRawBufferPointer(start: nil, count: 0)
    var consumed = 0
  }

  private let input: RandomAccessInput
  private let label: String
  private let chain: PayloadChain
  private let stretches: [Stretch]
  private let maxLanes: Int
  private static let chunk = 1 << 20
  /// Until `finish`, lanes run only when this many can be busy.
  private let batch: Int

  private let condition = NSCondition()
  private var readable: Int64 = 0
  private var finishing = false
  private var done = false
  private var failure: Error?
  private var thread: Thread?

  /// The multi-lane kernels this CPU runs (`AI_SHELL_SHA256_*` bits of sha256_lanes.h).
  public static let availableKernels = Int(ai_shell_sha256_kernels())
  private let kernel16: Int32?
  private let kernel8: Int32?

  /// `label` names the payload in errors; `kernels` limits the kernels used (tests choose each;
  /// 0: OpenSSL alone).
  public init(chain: PayloadChain, input: RandomAccessInput, label: String, kernels: Int = availableKernels) {
    self.input = input
    self.label = label
    self.chain = chain
    let usable = kernels & Self.availableKernels
    func has(_ k: Int32) -> Int32? { usable & Int(k) != 0 ? k : nil }
    kernel16 = has(Int32(AI_SHELL_SHA256_X16_AVX512))
    kernel8 = has(Int32(AI_SHELL_SHA256_X8_AVX512)) ?? has(Int32(AI_SHELL_SHA256_X8_AVX2))
    maxLanes = kernel16 != nil ? 16 : (kernel8 != nil ? 8 : 1)
    batch = min(maxLanes, 8)
    var stretches: [Stretch] = []
    var start: Int64 = 0
    var words = SHA256Digest.initialWords
    for c in chain.checkpoints {
      // Manifest.validate refuses these; a chain from elsewhere fails here instead of hashing
      // stretches that do not end on block edges
      guard c.offset > start, c.offset % 64 == 0, c.offset < chain.size, let end = SHA256Digest.words(c.state)
      else {
        failure = BackupError(.corrupt, "\(label): the SHA-256 checkpoint at \(c.offset) is malformed")
        break
      }
      stretches.append(Stretch(start: start, end: c.offset, startWords: words, endWords: end))
      (start, words) = (c.offset, end)
    }
    stretches.append(Stretch(start: start, end: chain.size, startWords: words, endWords: nil))
    self.stretches = stretches
  }

  /// Checks a payload that is already whole, on the calling thread.
  public static func check(chain: PayloadChain, input: RandomAccessInput, label: String) throws {
    let check = PayloadChainCheck(chain: chain, input: input, label: label)
    check.finishing = true
    check.readable = chain.size
    check.run()
    if let failure = check.failure { throw failure }
  }

  /// The first `offset` bytes of the payload can be read now; starts the background thread the
  /// first time.
  public func advance(to offset: Int64) {
    condition.lock()
    readable = max(readable, offset)
    if thread == nil {
      let t = Thread { [self] in
        run()
        condition.lock()
        done = true
        condition.broadcast()
        condition.unlock()
      }
      t.name = "ai-shell.sha256-chain"
      thread = t
      t.start()
    }
    condition.broadcast()
    condition.unlock()
  }

  /// Every byte can be read: checks what is left, waits for it, and throws if any stretch failed.
  public func finish() throws {
    advance(to: chain.size)
    condition.lock()
    finishing = true
    condition.broadcast()
    while !done { condition.wait() }
    condition.unlock()
    if let failure { throw failure }
  }

  /// Stops the background thread without checking the rest (the payload is being discarded).
  public func cancel() {
    condition.lock()
    if failure == nil { failure = CancellationError() }
    finishing = true
    condition.broadcast()
    while thread != nil && !done { condition.wait() }
    condition.unlock()
  }

  // MARK: the checking thread

  /// How many stretches (not counting the last) are readable whole, and whether `finish` was
  /// called. Before `finish` it waits until `batch` lanes can be busy (with the `active` ones):
  /// a kernel's lanes cost the same busy or idle, and a lane that waits keeps its state.
  private func wait(next: Int, active: Int) -> (ready: Int, finishing: Bool, stop: Bool) {
    condition.lock()
    defer { condition.unlock() }
    while true {
      var ready = 0
      while next + ready < stretches.count - 1 && stretches[next + ready].end <= readable { ready += 1 }
      if failure != nil { return (0, true, true) }
      if finishing || active + ready >= batch { return (ready, finishing, false) }
      condition.wait()
    }
  }

  private func fail(_ i: Int) {
    let s = stretches[i]
    let error = BackupError(
      .corrupt,
      "\(label) fails its SHA-256 check: bytes \(s.start)..<\(s.end) are not the ones the backup wrote")
    condition.lock()
    if failure == nil { failure = error }
    condition.unlock()
  }

  private func run() {
    var lanes: [Lane] = []
    var free: [UnsafeMutableRawBufferPointer] = []
    defer { for b in free + lanes.compactMap(\.buffer) { b.deallocate() } }
    let mappable = input as? MappableInput
    var next = 0
    do {
      while true {
        let (ready, finishing, stop) = wait(next: next, active: lanes.count)
        if stop { return }
        // fill free lanes with complete stretches, in order
        var added = 0
        while lanes.count < maxLanes && added < ready {
          let buffer =
            mappable != nil ? nil : free.popLast() ?? .allocate(byteCount: Self.chunk, alignment: 64)
          let s = stretches[next]
          lanes.append(Lane(stretch: next, position: s.start, words: s.startWords, buffer: buffer))
          next += 1
          added += 1
        }
        if lanes.isEmpty {
          guard finishing && next >= stretches.count - 1 else { continue }
          try checkLast()
          return
        }
        for i in lanes.indices where lanes[i].consumed == lanes[i].bytes.count {
          try fill(&lanes[i], mappable)
        }
        step(&lanes)
        var kept: [Lane] = []
        for lane in lanes {
          let s = stretches[lane.stretch]
          if lane.position < s.end {
            kept.append(lane)
            continue
          }
          if let buffer = lane.buffer { free.append(buffer) }
          if lane.words != s.endWords { fail(lane.stretch) }
        }
        lanes = kept
      }
    } catch {
      condition.lock()
      if failure == nil { failure = error }
      condition.unlock()
    }
  }

  /// Reads or maps the lane's next chunk (a whole number of blocks: stretches end on block edges).
  /// A mapping saves copying the bytes out of the page cache (a fifth of an import's system time).
  private func fill(_ lane: inout Lane, _ mappable: MappableInput?) throws {
    let want = Int(min(Int64(Self.chunk), stretches[lane.stretch].end - lane.position))
    lane.consumed = 0
    if let mappable {
      lane.mapping = nil
      let mapping = try mappable.map(at: lane.position, count: want)
      lane.mapping = mapping
      lane.bytes = mapping.bytes
    } else if let buffer = lane.buffer {
      let part = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want])
      try readWhole(at: lane.position, into: part)
      lane.bytes = UnsafeRawBufferPointer(part)
    }
  }

  /// Fills `buffer` from `offset`, or throws: the payload is shorter than its chain says.
  private func readWhole(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws {
    let n = try readFully(input, at: offset, into: buffer)
    guard n == buffer.count else {
      throw BackupError(.corrupt, "\(label) ended at \(offset + Int64(n)) bytes")
    }
  }

  /// Hashes as many blocks as every lane has buffered: side by side with the narrowest kernel that
  /// holds the lanes, or one lane at a time through OpenSSL when there are only one or two.
  private func step(_ lanes: inout [Lane]) {
    let kernel = lanes.count > 8 ? kernel16 : (lanes.count > 2 ? kernel8 ?? kernel16 : nil)
    guard let kernel else {
      for i in lanes.indices {
        let bytes = UnsafeRawBufferPointer(rebasing: lanes[i].bytes[lanes[i].consumed...])
        var digest = SHA256Digest(resumingAt: lanes[i].position, words: lanes[i].words)
        digest.update(bytes)
        lanes[i].words = digest.stateWords
        lanes[i].position += Int64(bytes.count)
        lanes[i].consumed = lanes[i].bytes.count
      }
      return
    }
    let width = kernel == Int32(AI_SHELL_SHA256_X16_AVX512) ? 16 : 8
    let blocks = lanes.map { ($0.bytes.count - $0.consumed) / 64 }.min()!
    var state = [UInt32](repeating: 0, count: width * 8)
    var pointers = [UnsafePointer<UInt8>?](repeating: nil, count: width)
    // lanes beyond the stretches hash a copy of the first lane's bytes into a discarded state
    for l in 0..<width {
      let lane = lanes[min(l, lanes.count - 1)]
      state.replaceSubrange((l * 8)..<(l * 8 + 8), with: lane.words)
      pointers[l] = (lane.bytes.baseAddress! + lane.consumed).assumingMemoryBound(to: UInt8.self)
    }
    pointers.withUnsafeBufferPointer { p in
      ai_shell_sha256_blocks(kernel, &state, p.baseAddress!, blocks)
    }
    for i in lanes.indices {
      lanes[i].words = Array(state[(i * 8)..<(i * 8 + 8)])
      lanes[i].consumed += blocks * 64
      lanes[i].position += Int64(blocks * 64)
    }
  }

  /// The last stretch, from the last checkpoint to the end, finalised into the payload's SHA-256.
  private func checkLast() throws {
    let s = stretches[stretches.count - 1]
    var digest = SHA256Digest(resumingAt: s.start, words: s.startWords)
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.chunk, alignment: 64)
    defer { buffer.deallocate() }
    var at = s.start
    while at < s.end {
      let want = Int(min(Int64(Self.chunk), s.end - at))
      let part = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want])
      try readWhole(at: at, into: part)
      digest.update(UnsafeRawBufferPointer(part))
      at += Int64(want)
    }
    if digest.finalizeHex() != chain.sha256 { fail(stretches.count - 1) }
  }
}
