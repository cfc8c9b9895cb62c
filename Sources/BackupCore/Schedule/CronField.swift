import BackupModel

/// A set of small integers (0...63) kept as a bit mask; one per cron field.
struct CronBits: Sendable, Hashable {
  var mask: UInt64 = 0

  func contains(_ value: Int) -> Bool {
    value >= 0 && value < 64 && mask & (1 << UInt64(value)) != 0
  }

  mutating func insert(_ value: Int) {
    mask |= 1 << UInt64(value)
  }

  /// The smallest member that is `>= value`, or nil.
  func next(from value: Int) -> Int? {
    guard value < 64 else { return nil }
    let rest = mask & (~UInt64(0) << UInt64(max(value, 0)))
    return rest == 0 ? nil : rest.trailingZeroBitCount
  }

  var isEmpty: Bool { mask == 0 }
}

/// The five fields of a cron expression, in order, with their ranges and names.
enum CronField: Int, CaseIterable, Sendable {
  case minute, hour, dayOfMonth, month, dayOfWeek

  var name: String {
    switch self {
    case .minute: return "minute"
    case .hour: return "hour"
    case .dayOfMonth: return "day-of-month"
    case .month: return "month"
    case .dayOfWeek: return "day-of-week"
    }
  }

  /// The values a field accepts. Day-of-week takes 0-7, where 0 and 7 are both Sunday.
  var range: ClosedRange<Int> {
    switch self {
    case .minute: return 0...59
    case .hour: return 0...23
    case .dayOfMonth: return 1...31
    case .month: return 1...12
    case .dayOfWeek: return 0...7
    }
  }

  /// Three-letter names (case-insensitive), the first one standing for `range.lowerBound`.
  var names: [String]? {
    switch self {
    case .month: return ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    case .dayOfWeek: return ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
    default: return nil
    }
  }

  var allowed: String {
    switch self {
    case .month: return "1-12 or JAN-DEC"
    case .dayOfWeek: return "0-7 (0 and 7 are Sunday) or SUN-SAT"
    default: return "\(range.lowerBound)-\(range.upperBound)"
    }
  }

  /// The parsed field: its values, and whether it starts with `*` (which matters for the
  /// day-of-month/day-of-week rule).
  struct Parsed {
    var bits: CronBits
    var startsWithStar: Bool
    var text: String
  }

  /// Parses one field: a comma-separated list of `*`, `N`, `N-M`, each optionally followed by
  /// `/STEP`; `N/STEP` means `N-last/STEP` (cronie's `get_range` in entry.c sets the end of the
  /// range to the field's maximum when a single number is followed by `/`).
  func parse(_ text: String) throws -> Parsed {
    func fail(_ why: String) -> BackupError {
      BackupError(.usage, "\(name) field \"\(text)\": \(why)", hint: CronExpression.syntaxHint)
    }
    var bits = CronBits()
    for item in text.split(separator: ",", omittingEmptySubsequences: false) {
      if item.isEmpty { throw fail("empty list item") }
      let parts = item.split(separator: "/", omittingEmptySubsequences: false)
      guard parts.count <= 2 else { throw fail("\"\(item)\" has more than one \"/\"") }
      var step = 1
      if parts.count == 2 {
        let stepText = parts[1]
        guard !stepText.isEmpty else { throw fail("\"\(item)\" has no step after \"/\"") }
        guard stepText.allSatisfy(\.isASCIIDigit), let value = Int(stepText) else {
          throw fail("step \"\(stepText)\" is not a number")
        }
        guard value >= 1 else { throw fail("step \(value) is not allowed (a step must be at least 1)") }
        step = value
      }
      let base = parts[0]
      let low: Int
      let high: Int
      if base == "*" {
        (low, high) = (range.lowerBound, range.upperBound)
      } else if base.isEmpty {
        throw fail("\"\(item)\" has no value before \"/\"")
      } else if base.contains("-") {
        let ends = base.split(separator: "-", omittingEmptySubsequences: false)
        guard ends.count == 2, !ends[0].isEmpty, !ends[1].isEmpty else {
          throw fail("\"\(base)\" is not a range (expected START-END)")
        }
        low = try value(ends[0], fail)
        high = try value(ends[1], fail)
        guard low <= high else {
          throw fail("range \(ends[0])-\(ends[1]) is reversed (the start must not be after the end)")
        }
      } else {
        low = try value(base, fail)
        high = parts.count == 2 ? range.upperBound : low
      }
      for v in stride(from: low, through: high, by: step) {
        bits.insert(self == .dayOfWeek && v == 7 ? 0 : v)
      }
    }
    return Parsed(bits: bits, startsWithStar: text.hasPrefix("*"), text: text.uppercased())
  }

  private func value(_ token: Substring, _ fail: (String) -> BackupError) throws -> Int {
    if token.allSatisfy(\.isASCIIDigit) {
      guard let number = Int(token), range.contains(number) else {
        throw fail("\(token) is out of range (must be \(allowed))")
      }
      return number
    }
    if let names, let index = names.firstIndex(of: token.uppercased()) {
      return range.lowerBound + index
    }
    if token == "*" { throw fail("\"*\" cannot be part of a range") }
    if names != nil { throw fail("unknown name \"\(token)\" (must be \(allowed))") }
    throw fail("\"\(token)\" is not a number (must be \(allowed))")
  }
}

extension Character {
  fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}
