import BackupModel
import Foundation
import Testing

@testable import BackupCore

/// A fixed instant from an ISO 8601 UTC string ("2026-03-08T07:00:00Z").
private func at(_ text: String) -> Date {
  guard let date = ISO8601DateFormatter().date(from: text) else { fatalError("bad test date \(text)") }
  return date
}

private func iso(_ date: Date?) -> String? {
  date.map { ISO8601DateFormatter().string(from: $0) }
}

private func zone(_ id: String) -> TimeZone {
  guard let zone = TimeZone(identifier: id) else { fatalError("unknown zone \(id)") }
  return zone
}

/// One row of the known-answer table: expression, zone, injected "now", expected next run (UTC,
/// nil for none within five years) and where the expected value comes from.
struct CronKnownCase: CustomTestStringConvertible, Sendable {
  var expression: String
  var zone: String = "UTC"
  var now: String
  var next: String?
  var source: String
  var testDescription: String { "\(expression) [\(zone)] after \(now)" }
}

// Calendar facts used below (checked against `cal`): 2026-01-01 and 2026-01-15 are Thursdays,
// 2026-04-01 is a Wednesday (so 2026-04-13 is a Monday and 2026-05-01 a Friday).
// DST facts (IANA tzdata, the rules every zone below follows in 2026):
// - America/New_York: EST (-5) -> EDT (-4) on 2026-03-08 at 02:00 EST = 07:00Z;
//   EDT -> EST on 2026-11-01 at 02:00 EDT = 06:00Z (01:00-01:59 local happens twice).
// - Europe/Berlin: CET (+1) -> CEST (+2) on 2026-03-29 at 01:00Z (02:00 -> 03:00 local);
//   CEST -> CET on 2026-10-25 at 01:00Z (03:00 -> 02:00 local).
// - Australia/Lord_Howe (30-minute shift): +11 -> +10:30 on 2026-04-05 at 02:00 local = 2026-04-04T15:00Z
//   (01:30-01:59 local happens twice); +10:30 -> +11 on 2026-10-04 at 02:00 local = 2026-10-03T15:30Z
//   (02:00-02:29 local does not exist).
// - America/Sao_Paulo 2018: -03 -> -02 at midnight on 2018-11-04 = 03:00Z (00:00-00:59 does not exist).
let cronKnownCases: [CronKnownCase] = [
  // Syntax. "Now" is Thursday 2026-01-15 10:07 UTC unless said otherwise.
  .init(
    expression: "* * * * *", now: "2026-01-15T10:07:00Z", next: "2026-01-15T10:08:00Z",
    source: "every minute; strictly after now, so 10:07 itself is not returned"),
  .init(
    expression: "* * * * *", now: "2026-01-15T10:07:30Z", next: "2026-01-15T10:08:00Z",
    source: "runs are on whole minutes"),
  .init(
    expression: "*/15 * * * *", now: "2026-01-15T10:07:00Z", next: "2026-01-15T10:15:00Z",
    source: "crontab(5): steps after an asterisk; minutes 0,15,30,45"),
  .init(
    expression: "1-30/5 * * * *", now: "2026-01-15T10:07:00Z", next: "2026-01-15T10:11:00Z",
    source: "crontab(5): a range with a step; minutes 1,6,11,...,26"),
  .init(
    expression: "5/10 * * * *", now: "2026-01-15T10:07:00Z", next: "2026-01-15T10:15:00Z",
    source: "cronie entry.c: N/STEP is N-59/STEP; minutes 5,15,...,55 (not 10:10 as */10 would be)"),
  .init(
    expression: "1,5 * * * *", now: "2026-01-15T10:07:00Z", next: "2026-01-15T11:01:00Z",
    source: "crontab(5): lists; 10:01 and 10:05 have passed"),
  .init(
    expression: "0 9-17 * * 1-5", now: "2026-01-15T10:07:00Z", next: "2026-01-15T11:00:00Z",
    source: "ranges in hour and day-of-week; Thursday is 4"),
  .init(
    expression: "23 0-23/2 * * *", now: "2026-01-15T10:07:00Z", next: "2026-01-15T10:23:00Z",
    source: "crontab(5) example: 23 minutes after midnight, 2am, 4am, ...; 10:23 is still ahead"),
  .init(
    expression: "0 0 31 * *", now: "2026-01-31T00:00:00Z", next: "2026-03-31T00:00:00Z",
    source: "February has no 31st"),
  .init(
    expression: "0 0 1 1 *", now: "2026-12-31T23:59:59Z", next: "2027-01-01T00:00:00Z",
    source: "year boundary"),
  // The day-of-month/day-of-week rule (crontab(5) Note).
  .init(
    expression: "30 4 1,15 * 5", now: "2026-01-15T10:07:00Z", next: "2026-01-16T04:30:00Z",
    source: "crontab(5) example: the 1st and 15th plus every Friday; Friday 16th comes first"),
  .init(
    expression: "0 0 13 * FRI", now: "2026-04-11T00:00:00Z", next: "2026-04-13T00:00:00Z",
    source: "OR rule: Monday the 13th matches by day-of-month (the next Friday is the 17th)"),
  .init(
    expression: "0 0 13 * FRI", now: "2026-04-13T00:00:00Z", next: "2026-04-17T00:00:00Z",
    source: "OR rule: Friday the 17th matches by day-of-week"),
  .init(
    expression: "0 0 */2 * FRI", now: "2026-04-18T00:00:00Z", next: "2026-05-01T00:00:00Z",
    source: "day-of-month starts with *, so AND: an odd day that is a Friday (Apr 24 is even)"),
  .init(
    expression: "0 0 * * FRI", now: "2026-04-11T00:00:00Z", next: "2026-04-17T00:00:00Z",
    source: "day-of-month is *, so only Fridays"),
  // Names and Sunday as 7.
  .init(
    expression: "0 12 1 JAN,jul *", now: "2026-01-15T10:07:00Z", next: "2026-07-01T12:00:00Z",
    source: "crontab(5): month names, case does not matter"),
  .init(
    expression: "0 8 * * mon-FRI", now: "2026-01-15T10:07:00Z", next: "2026-01-16T08:00:00Z",
    source: "cronie crontab(5): ranges of names are allowed"),
  .init(
    expression: "0 0 * * 7", now: "2026-01-15T10:07:00Z", next: "2026-01-18T00:00:00Z",
    source: "crontab(5): 0 or 7 is Sunday; Sunday is 2026-01-18"),
  .init(
    expression: "0 0 * * 5-7", now: "2026-01-17T00:00:00Z", next: "2026-01-18T00:00:00Z",
    source: "range ending in 7: Friday, Saturday, Sunday"),
  .init(
    expression: "0 0 * * sun", now: "2026-01-18T00:00:00Z", next: "2026-01-25T00:00:00Z",
    source: "weekday name; strictly after now"),
  // Nicknames (crontab(5) EXTENSIONS).
  .init(
    expression: "@hourly", now: "2026-01-15T10:07:00Z", next: "2026-01-15T11:00:00Z", source: "0 * * * *"),
  .init(expression: "@daily", now: "2026-01-15T10:07:00Z", next: "2026-01-16T00:00:00Z", source: "0 0 * * *"),
  .init(
    expression: "@midnight", now: "2026-01-15T10:07:00Z", next: "2026-01-16T00:00:00Z", source: "0 0 * * *"),
  .init(
    expression: "@weekly", now: "2026-01-15T10:07:00Z", next: "2026-01-18T00:00:00Z", source: "0 0 * * 0"),
  .init(
    expression: "@monthly", now: "2026-01-15T10:07:00Z", next: "2026-02-01T00:00:00Z", source: "0 0 1 * *"),
  .init(
    expression: "@yearly", now: "2026-01-15T10:07:00Z", next: "2027-01-01T00:00:00Z", source: "0 0 1 1 *"),
  .init(
    expression: "@annually", now: "2026-01-15T10:07:00Z", next: "2027-01-01T00:00:00Z", source: "0 0 1 1 *"),
  // Leap days and impossible dates.
  .init(
    expression: "0 0 29 2 *", now: "2025-03-01T00:00:00Z", next: "2028-02-29T00:00:00Z",
    source: "2026 and 2027 are not leap years; 2028 is"),
  .init(
    expression: "0 0 29 2 *", now: "2096-03-01T00:00:00Z", next: nil,
    source: "2100 is not a leap year (divisible by 100, not 400): the next Feb 29 is 2104, beyond 5 years"),
  .init(
    expression: "0 0 30 2 *", now: "2026-01-15T10:07:00Z", next: nil, source: "February never has a 30th"),
  .init(
    expression: "0 0 31 4,6,9,11 *", now: "2026-01-15T10:07:00Z", next: nil, source: "30-day months only"),
  .init(
    expression: "0 0 31 2 MON", now: "2026-01-15T10:07:00Z", next: "2026-02-02T00:00:00Z",
    source: "OR rule: Feb 31 never exists, but Mondays in February do (Feb 2)"),
  // Time zones without a transition.
  .init(
    expression: "0 9 * * *", zone: "Europe/Berlin", now: "2026-01-15T10:07:00Z",
    next: "2026-01-16T08:00:00Z", source: "09:00 CET = 08:00Z"),
  .init(
    expression: "0 9 * * *", zone: "America/New_York", now: "2026-07-01T00:00:00Z",
    next: "2026-07-01T13:00:00Z", source: "09:00 EDT = 13:00Z"),
  .init(
    expression: "0 9 * * *", zone: "Australia/Lord_Howe", now: "2026-07-01T00:00:00Z",
    next: "2026-07-01T22:30:00Z",
    source: "09:00 at +10:30 = 22:30Z the previous day; 2026-07-01 09:00 local has passed"),
  // America/New_York spring forward: 02:00-02:59 does not exist on 2026-03-08.
  .init(
    expression: "30 2 * * *", zone: "America/New_York", now: "2026-03-07T12:00:00Z",
    next: "2026-03-08T07:00:00Z",
    source: "02:30 does not exist: runs once at 03:00 EDT, the first instant after the gap"),
  .init(
    expression: "30 2 * * *", zone: "America/New_York", now: "2026-03-08T07:00:00Z",
    next: "2026-03-09T06:30:00Z", source: "no second run on 03-08 (e.g. at 03:30); next is 02:30 EDT on 03-09"
  ),
  .init(
    expression: "*/15 2 * * *", zone: "America/New_York", now: "2026-03-08T06:00:00Z",
    next: "2026-03-08T07:00:00Z", source: "02:00-02:45 all skipped: they coalesce into one run at 03:00 EDT"),
  .init(
    expression: "*/15 2 * * *", zone: "America/New_York", now: "2026-03-08T07:00:00Z",
    next: "2026-03-09T06:00:00Z", source: "after the one catch-up run, 02:00 EDT on 03-09"),
  .init(
    expression: "0 3 * * *", zone: "America/New_York", now: "2026-03-08T06:00:00Z",
    next: "2026-03-08T07:00:00Z", source: "03:00 EDT exists: 07:00Z"),
  .init(
    expression: "30 2 * * *", zone: "America/New_York", now: "2026-03-08T06:59:59Z",
    next: "2026-03-08T07:00:00Z", source: "one second before the gap"),
  // America/New_York fall back: 01:00-01:59 happens twice on 2026-11-01.
  .init(
    expression: "30 1 * * *", zone: "America/New_York", now: "2026-11-01T00:00:00Z",
    next: "2026-11-01T05:30:00Z", source: "01:30 occurs twice: runs at the first (EDT) occurrence, 05:30Z"),
  .init(
    expression: "30 1 * * *", zone: "America/New_York", now: "2026-11-01T05:30:00Z",
    next: "2026-11-02T06:30:00Z",
    source: "not again at 01:30 EST (06:30Z on 11-01); next is 01:30 EST on 11-02"),
  .init(
    expression: "30 1 * * *", zone: "America/New_York", now: "2026-11-01T06:10:00Z",
    next: "2026-11-02T06:30:00Z", source: "now is 01:10 EST, in the repeated hour; 01:30 already ran"),
  .init(
    expression: "30 2 * * *", zone: "America/New_York", now: "2026-11-01T05:45:00Z",
    next: "2026-11-01T07:30:00Z", source: "02:30 happens once (EST) on the fall-back day"),
  .init(
    expression: "0 * * * *", zone: "America/New_York", now: "2026-11-01T05:30:00Z",
    next: "2026-11-01T06:00:00Z", source: "every-hour expressions follow real time: 01:00 EST also runs"),
  .init(
    expression: "0 * * * *", zone: "America/New_York", now: "2026-03-08T06:30:00Z",
    next: "2026-03-08T07:00:00Z", source: "every-hour: 02:00 skipped, 03:00 EDT is the next real hour"),
  // Europe/Berlin.
  .init(
    expression: "30 2 * * *", zone: "Europe/Berlin", now: "2026-03-28T12:00:00Z",
    next: "2026-03-29T01:00:00Z", source: "02:30 does not exist on 03-29: runs at 03:00 CEST = 01:00Z"),
  .init(
    expression: "30 2 * * *", zone: "Europe/Berlin", now: "2026-10-24T12:00:00Z",
    next: "2026-10-25T00:30:00Z", source: "02:30 occurs twice on 10-25: first occurrence, CEST = 00:30Z"),
  .init(
    expression: "30 2 * * *", zone: "Europe/Berlin", now: "2026-10-25T00:30:00Z",
    next: "2026-10-26T01:30:00Z", source: "not at 02:30 CET (01:30Z on 10-25); next is 02:30 CET on 10-26"),
  // Australia/Lord_Howe: 30-minute shifts.
  .init(
    expression: "15 2 * * *", zone: "Australia/Lord_Howe", now: "2026-10-03T00:00:00Z",
    next: "2026-10-03T15:30:00Z", source: "02:15 does not exist on 10-04: runs at 02:30 +11 = 15:30Z on 10-03"
  ),
  .init(
    expression: "45 1 * * *", zone: "Australia/Lord_Howe", now: "2026-04-04T00:00:00Z",
    next: "2026-04-04T14:45:00Z", source: "01:45 occurs twice on 04-05: first occurrence, +11 = 14:45Z"),
  .init(
    expression: "45 1 * * *", zone: "Australia/Lord_Howe", now: "2026-04-04T14:45:00Z",
    next: "2026-04-05T15:15:00Z", source: "not at 01:45 +10:30 (15:15Z on 04-04); next is 04-06 at +10:30"),
  // America/Sao_Paulo 2018: the day itself starts at 01:00.
  .init(
    expression: "@daily", zone: "America/Sao_Paulo", now: "2018-11-03T12:00:00Z",
    next: "2018-11-04T03:00:00Z", source: "midnight does not exist on 2018-11-04: runs at 01:00 -02 = 03:00Z"),
]

@Suite struct CronNextRunTests {
  @Test(arguments: cronKnownCases) func knownCase(_ row: CronKnownCase) throws {
    let expression = try CronExpression.parse(row.expression)
    let next = expression.nextRun(after: at(row.now), in: zone(row.zone))
    #expect(iso(next) == row.next, "\(row.source)")
  }

  /// Runs from `start` on, following `nextRun` `count` times.
  func runs(_ expression: String, _ zoneID: String, from start: String, count: Int) throws -> [Date] {
    let cron = try CronExpression.parse(expression)
    var result: [Date] = []
    var now = at(start)
    for _ in 0..<count {
      guard let next = cron.nextRun(after: now, in: zone(zoneID)) else { break }
      result.append(next)
      now = next
    }
    return result
  }

  @Test func everyThirtyMinutesFollowsRealTimeAcrossBothTransitions() throws {
    let newYork = zone("America/New_York")
    for start in ["2026-03-08T04:00:00Z", "2026-11-01T03:00:00Z"] {
      let times = try runs("*/30 * * * *", "America/New_York", from: start, count: 12)
      #expect(times.count == 12)
      for (a, b) in zip(times, times.dropFirst()) {
        // 01:30 EST -> 03:00 EDT is also 30 real minutes; no duplicates, no extra gaps
        #expect(b.timeIntervalSince(a) == 1800, "\(iso(a)!) -> \(iso(b)!)")
      }
      #expect(iso(times.first) == iso(at(start).addingTimeInterval(1800)))
    }
    // the fall-back day sees 01:30 local twice (EDT and EST), the spring day never sees 02:xx
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = newYork
    let fall = try runs("*/30 * * * *", "America/New_York", from: "2026-11-01T03:00:00Z", count: 12)
    #expect(fall.filter { calendar.component(.hour, from: $0) == 1 }.count == 4)
    let spring = try runs("*/30 * * * *", "America/New_York", from: "2026-03-08T04:00:00Z", count: 12)
    #expect(spring.allSatisfy { calendar.component(.hour, from: $0) != 2 })
    // a coarser every-hour job: the gap shows up as the skipped hour only
    let hourly = try runs("0 * * * *", "America/New_York", from: "2026-03-08T04:30:00Z", count: 4)
    #expect(
      hourly.map { iso($0)! } == [
        "2026-03-08T05:00:00Z", "2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z", "2026-03-08T08:00:00Z",
      ])
  }

  @Test func aSpecificTimeRunsExactlyOncePerDayAcrossTransitions() throws {
    for (zoneID, start) in [
      ("America/New_York", "2026-03-05T00:00:00Z"), ("America/New_York", "2026-10-29T00:00:00Z"),
      ("Europe/Berlin", "2026-03-26T00:00:00Z"), ("Europe/Berlin", "2026-10-22T00:00:00Z"),
    ] {
      for expression in ["30 2 * * *", "30 1 * * *", "0 2 * * *", "59 2 * * *"] {
        let times = try runs(expression, zoneID, from: start, count: 7)
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone(zoneID)
        let days = times.map { calendar.dateComponents([.year, .month, .day], from: $0) }
        #expect(Set(days).count == 7, "\(expression) in \(zoneID): one run per local day")
        #expect(zip(times, times.dropFirst()).allSatisfy { $0 < $1 })
      }
    }
  }

  @Test func searchIsBoundedToFiveYears() throws {
    let never = try CronExpression.parse("0 0 30 2 *")
    #expect(never.nextRun(after: at("2026-01-01T00:00:00Z"), in: zone("America/New_York")) == nil)
    let leap = try CronExpression.parse("0 0 29 2 *")
    // 2028-02-29 is within five years of 2024-03-01; the next after it, 2032, also is
    #expect(iso(leap.nextRun(after: at("2028-02-29T00:00:00Z"), in: zone("UTC"))) == "2032-02-29T00:00:00Z")
  }
}

/// Compares `nextRun` with a brute-force reference that steps through real time one minute at a
/// time, reads the local wall clock with Foundation's Calendar, and applies the documented rules
/// directly: every-hour expressions fire whenever the wall clock shows a matching minute;
/// other expressions fire when the wall clock first reaches or passes a matching wall time.
@Suite struct CronReferenceTests {
  typealias Matcher = @Sendable (_ minute: Int, _ hour: Int, _ day: Int, _ month: Int, _ weekday: Int) -> Bool

  static let utc: Calendar = {
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = TimeZone(identifier: "UTC")!
    return calendar
  }()

  /// One minute of real time in a window: the instant, its local wall time (as a UTC date) and
  /// the wall time's fields (weekday 0 = Sunday).
  struct Tick {
    var instant: Date
    var wall: Date
    var fields: [Int]
  }

  static func fields(ofWall wall: Date) -> [Int] {
    let c = utc.dateComponents([.minute, .hour, .day, .month, .weekday], from: wall)
    return [c.minute!, c.hour!, c.day!, c.month!, c.weekday! - 1]
  }

  static func timeline(zone: TimeZone, from start: Date, minutes: Int) -> [Tick] {
    var local = Calendar(identifier: .gregorian)
    local.timeZone = zone
    return (0...minutes).map { step in
      let t = start.addingTimeInterval(TimeInterval(step * 60))
      var c = local.dateComponents([.year, .month, .day, .hour, .minute], from: t)
      c.timeZone = TimeZone(identifier: "UTC")
      let wall = utc.date(from: c)!
      return Tick(instant: t, wall: wall, fields: fields(ofWall: wall))
    }
  }

  func reference(_ matches: Matcher, everyHour: Bool, timeline: [Tick]) -> [Date] {
    func test(_ f: [Int]) -> Bool { matches(f[0], f[1], f[2], f[3], f[4]) }
    var fires: [Date] = []
    var latest = timeline[0].wall
    for tick in timeline.dropFirst() {
      if everyHour {
        if test(tick.fields) { fires.append(tick.instant) }
      } else if tick.wall > latest {
        // every wall minute the clock reached or jumped over since the latest one
        var candidate = latest.addingTimeInterval(60)
        while candidate <= tick.wall {
          let f = candidate == tick.wall ? tick.fields : Self.fields(ofWall: candidate)
          if test(f) {
            fires.append(tick.instant)
            break
          }
          candidate = candidate.addingTimeInterval(60)
        }
      }
      latest = max(latest, tick.wall)
    }
    return fires
  }

  static let windows: [(zone: String, start: String)] = [
    ("America/New_York", "2026-03-07T00:00:00Z"), ("America/New_York", "2026-10-31T00:00:00Z"),
    ("Europe/Berlin", "2026-03-28T00:00:00Z"), ("Europe/Berlin", "2026-10-24T00:00:00Z"),
    ("Australia/Lord_Howe", "2026-04-03T12:00:00Z"), ("Australia/Lord_Howe", "2026-10-02T12:00:00Z"),
    ("America/Sao_Paulo", "2018-11-03T00:00:00Z"), ("America/Sao_Paulo", "2019-02-16T00:00:00Z"),
    ("Pacific/Apia", "2011-12-28T00:00:00Z"),  // skipped all of 2011-12-30
    ("UTC", "2026-02-27T00:00:00Z"),
  ]

  static let expressions: [(text: String, everyHour: Bool, matches: Matcher)] = [
    ("30 2 * * *", false, { m, h, _, _, _ in m == 30 && h == 2 }),
    ("30 1 * * *", false, { m, h, _, _, _ in m == 30 && h == 1 }),
    ("*/20 1-3 * * *", false, { m, h, _, _, _ in m % 20 == 0 && (1...3).contains(h) }),
    ("* 2 * * *", false, { _, h, _, _, _ in h == 2 }),
    ("0 */2 * * *", false, { m, h, _, _, _ in m == 0 && h % 2 == 0 }),
    ("0 0 * * *", false, { m, h, _, _, _ in m == 0 && h == 0 }),
    ("45 23 * * *", false, { m, h, _, _, _ in m == 45 && h == 23 }),
    ("15 2 1,31 * SAT", false, { m, h, d, _, wd in m == 15 && h == 2 && (d == 1 || d == 31 || wd == 6) }),
    ("*/15 * * * *", true, { m, _, _, _, _ in m % 15 == 0 }),
    ("0 * * * *", true, { m, _, _, _, _ in m == 0 }),
    ("7,37 * * * *", true, { m, _, _, _, _ in m == 7 || m == 37 }),
    ("*/10 * 1 3 *", true, { m, _, d, mo, _ in m % 10 == 0 && d == 1 && mo == 3 }),
  ]

  @Test func nextRunAgreesWithMinuteByMinuteReference() throws {
    let minutes = 4 * 24 * 60
    for window in Self.windows {
      let tz = zone(window.zone)
      let start = at(window.start)
      let timeline = Self.timeline(zone: tz, from: start, minutes: minutes)
      for expression in Self.expressions {
        let cron = try CronExpression.parse(expression.text)
        #expect(cron.followsRealTime == expression.everyHour)
        let expected = reference(expression.matches, everyHour: expression.everyHour, timeline: timeline)
        var actual: [Date] = []
        var now = start
        while let next = cron.nextRun(after: now, in: tz),
          next <= start.addingTimeInterval(TimeInterval(minutes * 60))
        {
          actual.append(next)
          now = next
        }
        #expect(
          actual == expected,
          "\(expression.text) in \(window.zone) from \(window.start)")
        // and from arbitrary instants between runs (not only from the previous run)
        for probe in stride(from: 0, to: minutes, by: 97) {
          let now = start.addingTimeInterval(TimeInterval(probe * 60 + 13))
          let want = expected.first { $0 > now }
          if let want {
            #expect(
              cron.nextRun(after: now, in: tz) == want,
              "\(expression.text) in \(window.zone) after \(iso(now)!)")
          }
        }
      }
    }
  }

  @Test func civilArithmeticAgreesWithFoundationCalendar() {
    // every 13th day from 1899 to 2101, plus both ends of each leap February
    var day = CivilTime.days(year: 1899, month: 1, day: 1)
    let last = CivilTime.days(year: 2101, month: 12, day: 31)
    while day <= last {
      let date = Date(timeIntervalSince1970: TimeInterval(day * 86_400))
      let c = Self.utc.dateComponents([.year, .month, .day, .weekday], from: date)
      let civil = CivilTime.date(days: day)
      #expect(civil.year == c.year && civil.month == c.month && civil.day == c.day)
      #expect(CivilTime.weekday(days: day) == c.weekday! - 1)
      #expect(CivilTime.days(year: c.year!, month: c.month!, day: c.day!) == day)
      day += 13
    }
    #expect(CivilTime.daysInMonth(year: 2000, month: 2) == 29)
    #expect(CivilTime.daysInMonth(year: 2100, month: 2) == 28)
    #expect(CivilTime.daysInMonth(year: 2028, month: 2) == 29)
  }
}

@Suite struct CronParseTests {
  @Test func normalizedDescriptionAndEquality() throws {
    #expect(try CronExpression.parse("  */15   *\t* * *  ").description == "*/15 * * * *")
    #expect(try CronExpression.parse("0 8 * jan-mar mon-fri").description == "0 8 * JAN-MAR MON-FRI")
    #expect(try CronExpression.parse("@midnight").description == "@daily")
    #expect(try CronExpression.parse("@ANNUALLY").description == "@yearly")
    #expect(try CronExpression.parse("@daily") == CronExpression.parse("0 0 * * *"))
    #expect(try CronExpression.parse("0 0 * * 7") == CronExpression.parse("0 0 * * SUN"))
    #expect(try CronExpression.parse("0 0 * * 0-7") != CronExpression.parse("0 0 * * *"))  // * vs range
    #expect(try CronExpression.parse("5/10 * * * *") == CronExpression.parse("5-59/10 * * * *"))
    #expect(try CronExpression.parse("0 0 1 * *") != CronExpression.parse("0 0 2 * *"))
    for text in ["@weekly", "1-30/5 0-23/2 1,15 JAN-JUN/2 MON-FRI", "*/7 * * * 7"] {
      let cron = try CronExpression.parse(text)
      #expect(try CronExpression.parse(cron.description) == cron)
    }
  }

  /// Each invalid expression, and text its error must contain (the field named, and why).
  static let invalid: [(String, [String])] = [
    ("", ["empty cron expression"]),
    ("* * * *", ["has 4 fields", "expected 5"]),
    ("* * * * * *", ["has 6 fields", "expected 5", "seconds"]),
    ("0 0 * * * /usr/bin/backup", ["has 6 fields"]),
    ("60 * * * *", ["minute field \"60\"", "must be 0-59"]),
    ("* 24 * * *", ["hour field \"24\"", "must be 0-23"]),
    ("* * 0 * *", ["day-of-month field \"0\"", "must be 1-31"]),
    ("* * 32 * *", ["day-of-month field \"32\"", "must be 1-31"]),
    ("* * * 13 *", ["month field \"13\"", "must be 1-12 or JAN-DEC"]),
    ("* * * 0 *", ["month field \"0\"", "out of range"]),
    ("* * * * 8", ["day-of-week field \"8\"", "must be 0-7"]),
    ("1,60 * * * *", ["minute field \"1,60\"", "60 is out of range"]),
    ("5-1 * * * *", ["minute field \"5-1\"", "reversed"]),
    ("* * * * FRI-MON", ["day-of-week field \"FRI-MON\"", "reversed"]),
    ("*/0 * * * *", ["minute field \"*/0\"", "step 0", "at least 1"]),
    ("* 1-5/0 * * *", ["hour field \"1-5/0\"", "at least 1"]),
    ("*/x * * * *", ["minute field \"*/x\"", "step \"x\" is not a number"]),
    ("*/ * * * *", ["minute field \"*/\"", "no step"]),
    ("1,,2 * * * *", ["minute field \"1,,2\"", "empty list item"]),
    ("* 1, * * *", ["hour field \"1,\"", "empty list item"]),
    ("* * * FOO *", ["month field \"FOO\"", "unknown name \"FOO\""]),
    ("* * * * MONDAY", ["day-of-week field \"MONDAY\"", "unknown name"]),
    ("* * * JAN-FOO *", ["month field \"JAN-FOO\"", "unknown name \"FOO\""]),
    ("abc * * * *", ["minute field \"abc\"", "is not a number"]),
    ("* MON * * *", ["hour field \"MON\"", "is not a number"]),
    ("-5 * * * *", ["minute field \"-5\"", "not a range"]),
    ("1-2-3 * * * *", ["minute field \"1-2-3\"", "not a range"]),
    ("*-5 * * * *", ["minute field \"*-5\"", "cannot be part of a range"]),
    ("1/2/3 * * * *", ["minute field \"1/2/3\"", "more than one"]),
    ("/5 * * * *", ["minute field \"/5\"", "no value"]),
    ("@reboot", ["@reboot", "not supported", "no reboot event"]),
    ("@fortnightly", ["unknown cron nickname \"@fortnightly\""]),
    ("@daily 0", ["takes no fields"]),
  ]

  @Test(arguments: invalid) func rejects(_ text: String, _ expected: [String]) {
    #expect {
      _ = try CronExpression.parse(text)
    } throws: { error in
      guard let error = error as? BackupError, error.status == .usage else { return false }
      let missing = expected.filter { !error.description.contains($0) }
      if !missing.isEmpty { Issue.record("\"\(text)\": \(error.description) lacks \(missing)") }
      return missing.isEmpty
    }
  }

  @Test func validatesTimeZones() throws {
    #expect(try CronExpression.validateTimeZone("Europe/Berlin").identifier == "Europe/Berlin")
    #expect(try CronExpression.validateTimeZone("UTC").secondsFromGMT() == 0)
    #expect(try CronExpression.validateTimeZone("Australia/Lord_Howe").identifier == "Australia/Lord_Howe")
    for bad in ["", "Mars/Olympus_Mons", "Europe/Berlin ", "not a zone"] {
      #expect {
        _ = try CronExpression.validateTimeZone(bad)
      } throws: { error in
        let e = error as? BackupError
        return e?.status == .usage && e!.message.contains("unknown time zone")
      }
    }
  }
}
