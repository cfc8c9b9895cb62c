import Foundation

/// Which backups of a schedule to keep (docs/SCHEDULES.md, "Retention"). Keep rules combine like
/// restic's `forget`: a backup kept by any rule is kept. A rule that is nil or 0 is off.
public struct RetentionRules: Sendable, Equatable, Codable {
  /// Keep every backup younger than this many days.
  public var withinDays: Int?
  /// Keep the newest N backups.
  public var last: Int?
  /// Keep the newest backup of each of the last N days / ISO weeks / months that have backups.
  public var daily: Int?
  public var weekly: Int?
  public var monthly: Int?
  /// At most this many backups survive (the newest of those the rules keep); 0: no cap.
  public var maxBackups: Int?

  public init(
    withinDays: Int? = nil, last: Int? = nil, daily: Int? = nil, weekly: Int? = nil, monthly: Int? = nil,
    maxBackups: Int? = nil
  ) {
    self.withinDays = withinDays
    self.last = last
    self.daily = daily
    self.weekly = weekly
    self.monthly = monthly
    self.maxBackups = maxBackups
  }

  /// Whether any keep rule is on (without one, every backup is kept, up to `maxBackups`).
  public var hasKeepRule: Bool {
    [withinDays, last, daily, weekly, monthly].contains { ($0 ?? 0) > 0 }
  }
}

public struct RetentionDecision: Sendable, Equatable, Codable {
  public var id: String
  public var createdAt: Date
  public var keep: Bool
  /// Why it is kept (`newest`, `within 7 days`, `last 3`, `daily 2026-11-28`, ...) or removed.
  public var reasons: [String]
}

public enum RetentionPolicy {
  /// Decides keep/remove for each backup, newest first. Pure: the same input gives the same
  /// answer. `timeZone` defines the day/week/month buckets. `newest` names the backup that counts
  /// as the newest (the one a run just made, when creation times tie); by default the one with the
  /// latest `createdAt`.
  public static func evaluate(
    _ backups: [(id: String, createdAt: Date)], rules: RetentionRules, now: Date,
    timeZone: TimeZone = TimeZone(identifier: "UTC")!, newest: String? = nil
  ) -> [RetentionDecision] {
    let sorted = backups.sorted {
      if $0.id == newest || $1.id == newest { return $0.id == newest }
      return ($0.createdAt, $0.id) > ($1.createdAt, $1.id)
    }
    var decisions = sorted.map {
      RetentionDecision(id: $0.id, createdAt: $0.createdAt, keep: false, reasons: [])
    }
    guard !decisions.isEmpty else { return [] }
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = timeZone
    var iso = Calendar(identifier: .iso8601)
    iso.timeZone = timeZone

    if !rules.hasKeepRule {
      for i in decisions.indices {
        decisions[i].keep = true
        decisions[i].reasons.append("no keep rule")
      }
    }
    if let days = rules.withinDays, days > 0 {
      let cutoff = now.addingTimeInterval(-Double(days) * 86_400)
      for i in decisions.indices where decisions[i].createdAt >= cutoff {
        decisions[i].keep = true
        decisions[i].reasons.append("within \(days) days")
      }
    }
    if let n = rules.last, n > 0 {
      for i in decisions.indices.prefix(n) {
        decisions[i].keep = true
        decisions[i].reasons.append("last \(n)")
      }
    }
    func bucket(_ n: Int?, _ label: String, _ key: (Date) -> String) {
      guard let n, n > 0 else { return }
      var seen: String?
      var count = 0
      for i in decisions.indices {
        let k = key(decisions[i].createdAt)
        if k == seen { continue }
        seen = k
        guard count < n else { break }
        count += 1
        decisions[i].keep = true
        decisions[i].reasons.append("\(label) \(k)")
      }
    }
    bucket(rules.daily, "daily") {
      let c = calendar.dateComponents([.year, .month, .day], from: $0)
      return String(format: "%04d-%02d-%02d", c.year!, c.month!, c.day!)
    }
    bucket(rules.weekly, "weekly") {
      let c = iso.dateComponents([.yearForWeekOfYear, .weekOfYear], from: $0)
      return String(format: "%04d-W%02d", c.yearForWeekOfYear!, c.weekOfYear!)
    }
    bucket(rules.monthly, "monthly") {
      let c = calendar.dateComponents([.year, .month], from: $0)
      return String(format: "%04d-%02d", c.year!, c.month!)
    }
    if let cap = rules.maxBackups, cap > 0 {
      var kept = 0
      for i in decisions.indices where decisions[i].keep {
        kept += 1
        if kept > cap {
          decisions[i].keep = false
          decisions[i].reasons = ["beyond maxBackups \(cap)"]
        }
      }
    }
    // the newest backup is never removed, whatever the rules say
    if !decisions[0].keep {
      decisions[0].keep = true
      decisions[0].reasons = []
    }
    decisions[0].reasons.insert("newest", at: 0)
    for i in decisions.indices where !decisions[i].keep && decisions[i].reasons.isEmpty {
      decisions[i].reasons = ["kept by no rule"]
    }
    return decisions
  }
}
