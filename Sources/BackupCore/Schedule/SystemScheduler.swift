import BackupModel
import Foundation

/// `schedule --print-systemd` and `--print-crontab`: the schedule for the system's scheduler.
extension CronExpression {
  /// systemd's `OnCalendar=` for this expression: every field spelled out as a list of values
  /// (`*` when all), weekdays by name, the time zone appended. Throws, naming what cannot be
  /// said in systemd's calendar syntax: cron's day-of-month OR day-of-week rule (systemd
  /// requires both to match).
  public func systemdCalendar(timeZone: String) throws -> String {
    if !dayOfMonthStar && !dayOfWeekStar {
      throw BackupError(
        .usage,
        "cannot translate \"\(description)\" to systemd OnCalendar: both day-of-month and day-of-week are restricted, and cron runs when EITHER matches while systemd requires BOTH",
        hint: "split it into two schedules (one per day field), or use --print-crontab")
    }
    func list(_ bits: CronBits, _ range: ClosedRange<Int>, pad: Bool) -> String {
      let values = range.filter { bits.contains($0) }
      if values.count == range.count { return "*" }
      return values.map { pad ? String(format: "%02d", $0) : String($0) }.joined(separator: ",")
    }
    var parts: [String] = []
    if !dayOfWeekStar {
      let names = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
      let days = (0...6).filter { daysOfWeek.contains($0) || ($0 == 0 && daysOfWeek.contains(7)) }
      if days.count < 7 { parts.append(days.map { names[$0] }.joined(separator: ",")) }
    }
    let dom = dayOfMonthStar ? "*" : list(daysOfMonth, 1...31, pad: false)
    parts.append("*-\(list(months, 1...12, pad: false))-\(dom)")
    parts.append("\(list(hours, 0...23, pad: true)):\(list(minutes, 0...59, pad: true)):00")
    parts.append(timeZone)
    return parts.joined(separator: " ")
  }
}

public enum SystemScheduler {
  /// A `.service` and a `.timer` unit, as one text with `# file:` headers.
  public static func systemdUnits(
    name: String, schedule: Config.Schedule, executable: String, configPath: String
  ) throws -> String {
    let (cron, _) = try schedule.parsed()
    let calendar = try cron.systemdCalendar(timeZone: schedule.timezone)
    let unit = "ai-shell-backup-\(name)"
    return """
      # file: \(unit).service
      [Unit]
      Description=ai-shell backup schedule \(name)
      Wants=network-online.target
      After=network-online.target

      [Service]
      Type=oneshot
      ExecStart=\(quote(executable)) backup schedule --run-now \(name) --config \(quote(configPath))

      # file: \(unit).timer
      [Unit]
      Description=ai-shell backup schedule \(name) (\(cron.description), \(schedule.timezone))

      [Timer]
      OnCalendar=\(calendar)
      Persistent=true

      [Install]
      WantedBy=timers.target

      """
  }

  /// A crontab line, with `CRON_TZ=` always (cron itself runs in the system zone, not UTC).
  public static func crontab(name: String, schedule: Config.Schedule, executable: String, configPath: String)
    throws -> String
  {
    let (cron, _) = try schedule.parsed()
    return """
      # ai-shell backup schedule \(name)
      CRON_TZ=\(schedule.timezone)
      \(cron.description) \(quote(executable)) backup schedule --run-now \(name) --config \(quote(configPath))

      """
  }

  static func quote(_ s: String) -> String {
    if s.allSatisfy({ $0.isLetter || $0.isNumber || "/._-+:@".contains($0) }) { return s }
    return "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
  }
}
