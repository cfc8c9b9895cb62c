import CSQLite

/// Splits SQL text into statements line by line, as the sqlite3 shell does: a statement ends at
/// a line ending in ";" where `sqlite3_complete` agrees (so trigger bodies and quoted text with
/// ";" stay whole). Used by restore and by the import of `sqlite3 .dump` files.
struct ScriptSplitter {
  enum Piece {
    /// A comment line between statements (`--` first).
    case comment(ArraySlice<UInt8>)
    /// A complete statement, trimmed of surrounding white space.
    case statement([UInt8])
  }

  private var acc: [UInt8] = []

  /// True while a statement has started but not ended.
  var isInsideStatement: Bool { acc.contains { !isSpace($0) } }

  /// Feeds one line (with its "\n"); returns what it completes, or nil.
  mutating func feed(_ line: [UInt8]) -> Piece? {
    if acc.isEmpty {
      guard let first = line.firstIndex(where: { !isSpace($0) }) else { return nil }
      if line[first] == UInt8(ascii: "-") && first + 1 < line.count && line[first + 1] == UInt8(ascii: "-") {
        return .comment(line[first...])
      }
    }
    acc.append(contentsOf: line)
    guard let last = acc.lastIndex(where: { !isSpace($0) }), acc[last] == UInt8(ascii: ";") else {
      return nil
    }
    acc.append(0)
    let complete = acc.withUnsafeBufferPointer {
      sqlite3_complete(UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self))
    }
    acc.removeLast()
    guard complete != 0 else { return nil }
    let first = acc.firstIndex(where: { !isSpace($0) }) ?? 0
    let statement = Array(acc[first...last])
    acc.removeAll(keepingCapacity: true)
    return .statement(statement)
  }
}
