import BackupCore
import Foundation
import Testing

/// RetentionPolicy on synthetic catalogs (docs/SCHEDULES.md, "Retention").
@Suite struct RetentionTests {
  let utc = TimeZone(identifier: "UTC")!

  /// 2026-11-28 12:00 UTC minus the given hours.
  func at(_ hoursAgo: Double) -> Date {
    Date(timeIntervalSince1970: 1_795_867_200 - hoursAgo * 3600)
  }
  var now: Date { at(0) }

  func date(_ text: String) -> Date {
    let f = ISO8601DateFormatter()
    return f.date(from: text)!
  }

  func kept(_ d: [RetentionDecision]) -> [String] { d.filter(\.keep).map(\.id) }
  func removed(_ d: [RetentionDecision]) -> [String] { d.filter { !$0.keep }.map(\.id) }

  @Test func withinDays() {
    let backups = (0..<10).map { (id: "b\($0)", createdAt: at(Double($0) * 24 + 1)) }
    let d = RetentionPolicy.evaluate(backups, rules: RetentionRules(withinDays: 3), now: now)
    #expect(kept(d) == ["b0", "b1", "b2"])
    #expect(removed(d) == ["b3", "b4", "b5", "b6", "b7", "b8", "b9"])
    #expect(d.first { $0.id == "b1" }?.reasons == ["within 3 days"])
    #expect(d.first { $0.id == "b9" }?.reasons == ["kept by no rule"])
  }

  @Test func keepLastAndOrderIndependence() {
    let backups = (0..<6).map { (id: "b\($0)", createdAt: at(Double($0))) }.shuffled()
    let d = RetentionPolicy.evaluate(backups, rules: RetentionRules(last: 2), now: now)
    #expect(d.map(\.id) == ["b0", "b1", "b2", "b3", "b4", "b5"])
    #expect(kept(d) == ["b0", "b1"])
    #expect(d[0].reasons == ["newest", "last 2"])
  }

  @Test func newestIsNeverRemoved() {
    // everything is old: the age rule keeps nothing, yet the newest survives
    let backups = (0..<3).map { (id: "b\($0)", createdAt: at(1000 + Double($0))) }
    let d = RetentionPolicy.evaluate(backups, rules: RetentionRules(withinDays: 1), now: now)
    #expect(kept(d) == ["b0"])
    #expect(d[0].reasons == ["newest"])
    // maxBackups 1 with keep-last 5: still only the newest
    let capped = RetentionPolicy.evaluate(backups, rules: RetentionRules(last: 5, maxBackups: 1), now: now)
    #expect(kept(capped) == ["b0"])
    #expect(capped[1].reasons == ["beyond maxBackups 1"])
    #expect(RetentionPolicy.evaluate([], rules: RetentionRules(last: 1), now: now).isEmpty)
  }

  @Test func noRuleKeepsEverythingUpToTheCap() {
    let backups = (0..<5).map { (id: "b\($0)", createdAt: at(Double($0) * 1000)) }
    #expect(kept(RetentionPolicy.evaluate(backups, rules: RetentionRules(), now: now)).count == 5)
    #expect(
      kept(RetentionPolicy.evaluate(backups, rules: RetentionRules(withinDays: 0, maxBackups: 3), now: now))
        == ["b0", "b1", "b2"])
  }

  @Test func dailyBucketsKeepTheNewestOfEachDay() {
    // three backups a day for five days (06:00, 12:00, 18:00 UTC), newest 2026-11-28 06:00
    var backups: [(id: String, createdAt: Date)] = []
    for day in 24...28 {
      for hour in [6, 12, 18] where !(day == 28 && hour > 6) {
        backups.append(("d\(day)h\(hour)", date("2026-11-\(day)T\(String(format: "%02d", hour)):00:00Z")))
      }
    }
    let d = RetentionPolicy.evaluate(backups, rules: RetentionRules(daily: 3), now: now)
    #expect(kept(d) == ["d28h6", "d27h18", "d26h18"])
    #expect(d.first { $0.id == "d27h18" }?.reasons == ["daily 2026-11-27"])
    // the buckets follow the time zone: in Tokyo (+9) 18:00 UTC is the next day
    let tokyo = RetentionPolicy.evaluate(
      backups, rules: RetentionRules(daily: 2), now: now, timeZone: TimeZone(identifier: "Asia/Tokyo")!)
    #expect(kept(tokyo) == ["d28h6", "d27h12"])
  }

  @Test func weeklyAndMonthlyBuckets() {
    // one backup a day from 2026-08-01 to 2026-11-28 (120 days)
    let start = date("2026-08-01T03:00:00Z")
    let backups = (0..<120).map { (id: "day\($0)", createdAt: start.addingTimeInterval(Double($0) * 86_400)) }
    let weekly = RetentionPolicy.evaluate(backups, rules: RetentionRules(weekly: 3), now: now)
    // ISO weeks start on Monday: 2026-11-28 is a Saturday (week 48); the newest of weeks 47 and 46
    // are the Sundays 2026-11-22 and 2026-11-15
    let keptDates = weekly.filter(\.keep).map { ISO8601DateFormatter().string(from: $0.createdAt) }
    #expect(keptDates == ["2026-11-28T03:00:00Z", "2026-11-22T03:00:00Z", "2026-11-15T03:00:00Z"])
    let monthly = RetentionPolicy.evaluate(backups, rules: RetentionRules(monthly: 3), now: now)
    let months = monthly.filter(\.keep).map { ISO8601DateFormatter().string(from: $0.createdAt) }
    #expect(months == ["2026-11-28T03:00:00Z", "2026-10-31T03:00:00Z", "2026-09-30T03:00:00Z"])
    #expect(monthly.first { $0.keep && $0.reasons.contains("monthly 2026-10") } != nil)
  }

  @Test func rulesCombineAsAUnion() {
    // GFS: 7 daily + 4 weekly + 6 monthly over a year of daily backups
    let start = date("2025-11-29T03:00:00Z")
    let backups = (0..<365).map { (id: "b\($0)", createdAt: start.addingTimeInterval(Double($0) * 86_400)) }
    let rules = RetentionRules(daily: 7, weekly: 4, monthly: 6)
    let d = RetentionPolicy.evaluate(backups, rules: rules, now: now)
    let keptCount = d.filter(\.keep).count
    // 7 days (Nov 22-28) overlap week 48 and 47's Sunday; weeks add 2 more Sundays
    // (Nov 15, Nov 8); months add Oct 31, Sep 30, Aug 31, Jul 31, Jun 30 (Nov is already kept)
    #expect(keptCount == 7 + 2 + 5)
    for decision in d where decision.keep {
      #expect(!decision.reasons.isEmpty)
    }
    // a backup kept by two rules lists both reasons
    #expect(d[0].reasons == ["newest", "daily 2026-11-28", "weekly 2026-W48", "monthly 2026-11"])
    // within + last: the union, not the intersection
    let u = RetentionPolicy.evaluate(backups, rules: RetentionRules(withinDays: 2, last: 5), now: now)
    #expect(u.filter(\.keep).count == 5)
    let u2 = RetentionPolicy.evaluate(backups, rules: RetentionRules(withinDays: 10, last: 2), now: now)
    #expect(u2.filter(\.keep).count == 10)
  }
}
