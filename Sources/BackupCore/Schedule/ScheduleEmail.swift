import BackupModel
import BackupNotify
import Foundation

/// The email a schedule sends after a run (docs/SCHEDULES.md, Notifications): always after a
/// failure, after a success only with `emailOnSuccess`. Sending never throws: a failure is
/// logged and the run's result stays what it was.
public enum ScheduleEmail {
  /// A bare address (`ops@example.com`); the error names `what` and the address.
  public static func validateAddress(_ address: String, what: String) throws {
    try EmailMessage.validateAddress(address, what: what)
  }

  /// Whether a run with this status mails anyone.
  public static func wanted(_ schedule: Config.Schedule, status: ScheduleRunRecord.Status) -> Bool {
    !schedule.email.isEmpty && (status != .success || schedule.emailOnSuccess)
  }

  /// Subject and body naming the schedule, database, backup id, size, duration and error.
  public static func message(
    name: String, schedule: Config.Schedule, outcome: ScheduleRunner.Outcome, started: Date, from: String,
    finished: Date = Date()
  ) -> EmailMessage {
    let database = ConnectionURL.redact(schedule.database)
    let ok = outcome.status == .success
    let subject: String
    if ok {
      subject =
        "[ai-shell] backup OK: schedule \(name), \(outcome.backupId ?? "-") (\(ByteText.format(outcome.sizeBytes)))"
    } else {
      let error = (outcome.error ?? "unknown error").split(whereSeparator: \.isNewline).joined(separator: " ")
      let short = error.count > 120 ? error.prefix(117) + "..." : Substring(error)
      subject = "[ai-shell] backup FAILED: schedule \(name), database \(database): \(short)"
    }
    var rows: [(String, String)] = [
      ("Schedule", name),
      ("Database", database),
      ("Status", ok ? "success" : "failed"),
      ("Backup id", outcome.backupId ?? "-"),
      ("Size", outcome.sizeBytes.map { "\(ByteText.format($0)) (\($0) bytes)" } ?? "-"),
      ("Duration", String(format: "%.1f s", outcome.durationSeconds)),
      ("Started", UTCStamp.extended(started)),
      ("Finished", UTCStamp.extended(finished)),
      ("Host", ProcessInfo.processInfo.hostName),
    ]
    if !ok { rows.append(("Error", outcome.error ?? "unknown error")) }
    if !outcome.removed.isEmpty {
      rows.append(("Retention removed", outcome.removed.map(\.id).joined(separator: ", ")))
    }
    let width = rows.map { $0.0.count }.max() ?? 0
    var body =
      ok ? "The scheduled backup \"\(name)\" succeeded.\n\n" : "The scheduled backup \"\(name)\" FAILED.\n\n"
    for (label, value) in rows {
      body += "\(label):\(String(repeating: " ", count: width - label.count + 1))\(value)\n"
    }
    body += "\n-- \n\(ToolInfo.versionString); `ai-shell backup schedule --list` shows the schedules.\n"
    return EmailMessage(
      from: from, to: schedule.email, subject: subject, body: body, date: finished,
      headers: [("X-AI-Shell-Schedule", name), ("X-AI-Shell-Status", ok ? "success" : "failed")])
  }

  /// Sends the run's email when one is wanted; nil when none was, else whether it went out.
  public static func send(
    name: String, schedule: Config.Schedule, outcome: ScheduleRunner.Outcome, started: Date, config: Config,
    log: (String) -> Void
  ) -> Bool? {
    guard wanted(schedule, status: outcome.status) else { return nil }
    let to = schedule.email.joined(separator: ", ")
    do {
      let (settings, from) = try config.notifications.smtp.settings()
      let message = message(name: name, schedule: schedule, outcome: outcome, started: started, from: from)
      try SMTPClient.send(message, settings: settings)
      log("email for \(name) sent to \(to)")
      return true
    } catch {
      let text = (error as? BackupError)?.description ?? "\(error)"
      log("email for \(name) to \(to) not sent: \(text); the backup's result is unaffected")
      return false
    }
  }
}
