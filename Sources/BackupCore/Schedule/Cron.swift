import BackupModel
import Foundation

/// A standard five-field cron expression (minute hour day-of-month month day-of-week) as
/// documented in cronie's `crontab(5)`, and the computation of its next run time in an IANA
/// time zone. See docs/SCHEDULES.md for the user-facing description.
///
/// Syntax: each field is a comma-separated list of `*`, `N`, `N-M`, each optionally followed by
/// `/STEP` (`N/STEP` means `N-last/STEP`, as in cronie). Months take JAN-DEC and days of week
/// SUN-SAT (case-insensitive, also in ranges); day-of-week takes 0-7 with 0 and 7 both Sunday.
/// The nicknames `@yearly`/`@annually`, `@monthly`, `@weekly`, `@daily`/`@midnight` and `@hourly`
/// stand for their five-field forms; `@reboot` is rejected (a scheduler running backups has no
/// "reboot" event).
///
/// Day rule (cronie `crontab(5)`, "Note: The day of a command's execution can be specified in
/// the following two fields — 'day of month', and 'day of week'. If both fields are restricted
/// (i.e., do not contain the "*" character), the command will be run when either field matches
/// the current time"; cronie's `entry.c` sets its DOM_STAR/DOW_STAR flags when the field's first
/// character is `*`): if either field starts with `*`, a day must match both fields; otherwise
/// a day matches if it matches either one. `0 0 13 * FRI` runs on every 13th and every Friday.
///
/// Daylight-saving time. Times are wall-clock times in the schedule's zone; where the wall
/// clock jumps the rules are (after cronie's `cron(8)`, "Daylight Saving Time and other time
/// changes", which treats jobs at specific times differently from jobs that run every hour):
/// - An expression whose hour field covers every hour (`*`, `*/1`, `0-23`; e.g. `*/15 * * * *`,
///   `@hourly`) follows real time: it runs at every instant whose local wall-clock time matches.
///   Minutes skipped by a spring-forward jump do not run; minutes repeated by a fall-back run
///   in both passes. Runs therefore stay evenly spaced in real time.
/// - Any other expression is tied to specific hours. A matching wall-clock time that does not
///   exist (02:30 on a spring-forward day in America/New_York) runs once, at the first instant
///   after the gap (03:00 local, cronie's "jobs that would have run in the interval that has
///   been skipped will be run immediately"); several skipped times coalesce into that one run.
///   A matching wall-clock time that occurs twice (01:30 on a fall-back day) runs once, at its
///   first occurrence; the repeated pass runs nothing ("running the same job twice is avoided").
/// Formally, for hour-specific expressions each matching wall time `w` runs at the first instant
/// whose local time is `>= w`; for every-hour expressions at each instant whose local time is
/// exactly `w`. Other offset changes (a zone changing its standard offset) follow the same rules.
public struct CronExpression: Sendable, Equatable, CustomStringConvertible {
  let minutes: CronBits
  let hours: CronBits
  let daysOfMonth: CronBits
  let months: CronBits
  let daysOfWeek: CronBits
  let dayOfMonthStar: Bool
  let dayOfWeekStar: Bool

  /// The normalized expression: a canonical nickname (`@yearly`, `@monthly`, `@weekly`, `@daily`,
  /// `@hourly`) if one was given, otherwise the five fields separated by single spaces with names
  /// in upper case. `parse(description)` gives back an equal expression.
  public let description: String

  /// How far `nextRun` looks ahead (five years of 366 days) before it answers nil.
  public static let searchHorizon: TimeInterval = 5 * 366 * 86_400

  static let syntaxHint =
    "a cron expression has five fields: minute hour day-of-month month day-of-week "
    + "(e.g. \"30 2 * * *\"), or a nickname such as @daily; see docs/SCHEDULES.md"

  private static let nicknames: [String: (canonical: String, fields: String)] = [
    "@yearly": ("@yearly", "0 0 1 1 *"), "@annually": ("@yearly", "0 0 1 1 *"),
    "@monthly": ("@monthly", "0 0 1 * *"), "@weekly": ("@weekly", "0 0 * * 0"),
    "@daily": ("@daily", "0 0 * * *"), "@midnight": ("@daily", "0 0 * * *"),
    "@hourly": ("@hourly", "0 * * * *"),
  ]

  private init(fields: [CronField.Parsed], description: String) {
    minutes = fields[0].bits
    hours = fields[1].bits
    daysOfMonth = fields[2].bits
    months = fields[3].bits
    daysOfWeek = fields[4].bits
    dayOfMonthStar = fields[2].startsWithStar
    dayOfWeekStar = fields[4].startsWithStar
    self.description = description
  }

  /// Parses a cron expression. Throws `BackupError(.usage)` naming the field and the reason,
  /// e.g. `minute field "60": 60 is out of range (must be 0-59)`.
  public static func parse(_ text: String) throws -> CronExpression {
    let words = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).map(String.init)
    guard let first = words.first else {
      throw BackupError(.usage, "empty cron expression", hint: syntaxHint)
    }
    if first.hasPrefix("@") {
      let nickname = first.lowercased()
      if nickname == "@reboot" {
        throw BackupError(
          .usage,
          "cron nickname \"@reboot\" is not supported: the backup scheduler runs at clock times "
            + "and has no reboot event",
          hint: "use a time such as @daily, or a systemd unit for start-up backups")
      }
      guard let nicknameEntry = nicknames[nickname] else {
        throw BackupError(
          .usage, "unknown cron nickname \"\(first)\"",
          hint: "supported: @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly")
      }
      guard words.count == 1 else {
        throw BackupError(
          .usage,
          "cron nickname \(first) takes no fields, found \"\(words.dropFirst().joined(separator: " "))\"",
          hint: syntaxHint)
      }
      let parsed = try zip(CronField.allCases, nicknameEntry.fields.split(separator: " ")).map {
        try $0.parse(String($1))
      }
      return CronExpression(fields: parsed, description: nicknameEntry.canonical)
    }
    guard words.count == 5 else {
      let extra = words.count == 6 ? " (seconds fields and commands are not supported)" : ""
      throw BackupError(
        .usage,
        "cron expression \"\(words.joined(separator: " "))\" has \(words.count) field\(words.count == 1 ? "" : "s"), "
          + "expected 5 (minute hour day-of-month month day-of-week)\(extra)", hint: syntaxHint)
    }
    let parsed = try zip(CronField.allCases, words).map { try $0.parse($1) }
    return CronExpression(fields: parsed, description: parsed.map(\.text).joined(separator: " "))
  }

  /// Returns the zone for an IANA name such as `Europe/Berlin`, `America/New_York` or `UTC`;
  /// throws `BackupError(.usage)` for a name Foundation does not know (names are case-sensitive).
  public static func validateTimeZone(_ id: String) throws -> TimeZone {
    guard !id.isEmpty, id.trimmingCharacters(in: .whitespaces) == id, let zone = TimeZone(identifier: id)
    else {
      throw BackupError(
        .usage, "unknown time zone \"\(id)\"",
        hint: "use an IANA time zone name such as UTC, Europe/Berlin or America/New_York")
    }
    return zone
  }

  /// Two expressions are equal when they run at the same times (`@daily` == `0 0 * * *`),
  /// whatever their spelling.
  public static func == (lhs: CronExpression, rhs: CronExpression) -> Bool {
    lhs.minutes == rhs.minutes && lhs.hours == rhs.hours && lhs.daysOfMonth == rhs.daysOfMonth
      && lhs.months == rhs.months && lhs.daysOfWeek == rhs.daysOfWeek
      && lhs.dayOfMonthStar == rhs.dayOfMonthStar && lhs.dayOfWeekStar == rhs.dayOfWeekStar
  }

  /// True when the hour field covers all 24 hours: such expressions follow real time across
  /// DST changes (see the type's documentation).
  var followsRealTime: Bool { hours.mask == (1 << 24) - 1 }

  /// The day-of-month/day-of-week rule for one civil day.
  func matchesDay(year: Int, month: Int, day: Int, dayNumber: Int) -> Bool {
    let dom = daysOfMonth.contains(day)
    let dow = daysOfWeek.contains(CivilTime.weekday(days: dayNumber))
    return dayOfMonthStar || dayOfWeekStar ? dom && dow : dom || dow
  }

  /// The first wall time (wall seconds, see `CivilTime`) that matches, is `>= start` and `< limit`.
  /// Walks matching months, then days, then hours and minutes; never minute by minute.
  func nextMatchingWall(from start: Int, before limit: Int) -> Int? {
    let firstMinute = -CivilTime.floorDiv(-start, 60) * 60  // start rounded up to a whole minute
    var dayNumber = CivilTime.floorDiv(firstMinute, CivilTime.secondsPerDay)
    let secondOfDay = firstMinute - dayNumber * CivilTime.secondsPerDay
    var (hour, minute) = (secondOfDay / 3600, secondOfDay % 3600 / 60)
    var (year, month, day) = CivilTime.date(days: dayNumber)
    while dayNumber * CivilTime.secondsPerDay < limit {
      if !months.contains(month) {
        // jump to the first day of the next matching month
        if let next = months.next(from: month + 1) {
          month = next
        } else {
          year += 1
          month = months.next(from: 1)!
        }
        day = 1
        dayNumber = CivilTime.days(year: year, month: month, day: 1)
        (hour, minute) = (0, 0)
        continue
      }
      if matchesDay(year: year, month: month, day: day, dayNumber: dayNumber) {
        var candidateHour = hours.next(from: hour)
        while let h = candidateHour {
          if let m = minutes.next(from: h == hour ? minute : 0) {
            let wall = dayNumber * CivilTime.secondsPerDay + h * 3600 + m * 60
            return wall < limit ? wall : nil
          }
          candidateHour = hours.next(from: h + 1)
        }
      }
      dayNumber += 1
      day += 1
      (hour, minute) = (0, 0)
      if day > CivilTime.daysInMonth(year: year, month: month) {
        day = 1
        if month == 12 { (year, month) = (year + 1, 1) } else { month += 1 }
      }
    }
    return nil
  }

  /// The first run strictly after `date`, in `timeZone`, following the DST rules in the type's
  /// documentation; nil if there is none within `searchHorizon` (five years), e.g. for
  /// `0 0 30 2 *`.
  ///
  /// The search walks real time in segments of constant UTC offset (split at the zone's
  /// transitions). Within a segment local time is UTC plus the offset, so the next matching
  /// wall time converts to an instant by subtracting the offset. It starts two days before
  /// `date` to know the latest wall time already reached (which a fall-back leaves ahead of
  /// the clock for a while).
  public func nextRun(after date: Date, in timeZone: TimeZone) -> Date? {
    let seconds = date.timeIntervalSince1970.rounded(.down)
    guard seconds.magnitude < 1e12 else { return nil }
    let after = Int(seconds)  // runs are whole seconds, so "> date" is "> after"
    let limit = after + Int(Self.searchHorizon)
    func offset(_ instant: Int) -> Int {
      timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(instant)))
    }
    let realTime = followsRealTime
    var start = after - 2 * CivilTime.secondsPerDay
    var latestWall = start + offset(start) - 1  // the greatest wall time seen before `start`
    while start <= limit {
      let delta = offset(start)
      var end = limit + 1
      if let next = timeZone.nextDaylightSavingTimeTransition(
        after: Date(timeIntervalSince1970: TimeInterval(start)))
      {
        let instant = next.timeIntervalSince1970.rounded()
        if instant > TimeInterval(start), instant < TimeInterval(end) { end = Int(instant) }
      }
      // A forward jump at `start` skipped the wall times (latestWall, start + delta): an
      // hour-specific expression runs once, now, for any of them that matched.
      if !realTime, start > after, start + delta > latestWall,
        nextMatchingWall(from: latestWall + 1, before: start + delta + 1) != nil
      {
        return Date(timeIntervalSince1970: TimeInterval(start))
      }
      var low = max(start, after + 1) + delta
      if !realTime { low = max(low, latestWall + 1) }  // never a wall time already passed
      if let wall = nextMatchingWall(from: low, before: end + delta) {
        let instant = wall - delta
        if offset(instant) == delta { return Date(timeIntervalSince1970: TimeInterval(instant)) }
        // The zone changed its offset without reporting a transition: split the segment there.
        end = firstOffsetChange(after: start, through: instant, from: delta, offset)
      }
      latestWall = max(latestWall, end - 1 + delta)
      start = end
    }
    return nil
  }

  /// The first instant in `(low, high]` whose offset differs from `delta` (`offset(high)` does).
  private func firstOffsetChange(after low: Int, through high: Int, from delta: Int, _ offset: (Int) -> Int)
    -> Int
  {
    var (low, high) = (low, high)
    while high - low > 1 {
      let middle = low + (high - low) / 2
      if offset(middle) == delta { low = middle } else { high = middle }
    }
    return high
  }
}
