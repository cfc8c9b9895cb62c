import BackupModel
import Foundation
import Logging

/// `backup scheduler`: a foreground loop that runs due schedules (docs/SCHEDULES.md). It re-reads
/// the config on every pass, sleeps at most `maxSleep` seconds at a time, runs jobs one after
/// another on a background thread (so the caller's signal handlers keep working) and stops when
/// `requestStop()` is called.
public final class Scheduler: @unchecked Sendable {
  public struct Options: Sendable {
    public var catchUp: Bool = true
    public var shutdownTimeoutSeconds: Double = 60
    public var maxSleepSeconds: Double = 30
    public init(catchUp: Bool = true, shutdownTimeoutSeconds: Double = 60) {
      self.catchUp = catchUp
      self.shutdownTimeoutSeconds = shutdownTimeoutSeconds
    }
  }

  let loadConfig: @Sendable () throws -> Config
  let backupDirectory: @Sendable (Config) -> String
  let options: Options
  let logger: Logger
  public let log: @Sendable (String) -> Void
  let lock = NSLock()
  var stopping = false
  /// Signalled on a stop request and when a job ends.
  let wake = DispatchSemaphore(value: 0)

  public init(
    options: Options, logger: Logger, loadConfig: @escaping @Sendable () throws -> Config,
    backupDirectory: @escaping @Sendable (Config) -> String, log: @escaping @Sendable (String) -> Void
  ) {
    self.options = options
    self.logger = logger
    self.loadConfig = loadConfig
    self.backupDirectory = backupDirectory
    self.log = log
  }

  public func requestStop(_ why: String) {
    lock.lock()
    let first = !stopping
    stopping = true
    lock.unlock()
    if first { log("received \(why), stopping") }
    wake.signal()
  }

  var isStopping: Bool {
    lock.lock()
    defer { lock.unlock() }
    return stopping
  }

  /// What the loop knows about one schedule: its next due time, for the cron/zone it was
  /// computed from.
  struct Plan {
    var key: String
    var due: Date?
  }

  /// Runs until stopped. Returns the exit status: 0, or 1 when a run had to be abandoned at
  /// shutdown.
  public func run() -> Int32 {
    log("scheduler started (pid \(getpid()))")
    var plans: [String: Plan] = [:]
    var firstPass = true
    while !isStopping {
      let config: Config
      do {
        config = try loadConfig()
      } catch {
        log("cannot read the config: \((error as? BackupError)?.message ?? "\(error)"); retrying")
        _ = wake.wait(timeout: .now() + options.maxSleepSeconds)
        continue
      }
      let dir = backupDirectory(config)
      let state = ScheduleState(backupDirectory: dir).load()
      let now = Date()
      var due: [(name: String, slot: Date)] = []
      for name in plans.keys where config.schedules[name]?.enabled != true {
        plans[name] = nil
        log("schedule \(name) removed or disabled")
      }
      for name in config.schedules.keys.sorted() {
        let s = config.schedules[name]!
        guard s.enabled, let parsed = try? s.parsed() else { continue }
        let (cron, zone) = parsed
        let key = "\(cron.description)|\(zone.identifier)"
        if let plan = plans[name], plan.key == key {
          if let d = plan.due, d <= now { due.append((name, d)) }
          continue
        }
        let next = cron.nextRun(after: now, in: zone)
        plans[name] = Plan(key: key, due: next)
        log(
          "schedule \(name) (\(cron.description) \(s.timezone)): next run \(next.map { Self.describe($0, zone) } ?? "never")"
        )
        // a run missed while no scheduler was up runs once now, not once per missed slot
        if firstPass && options.catchUp, let last = state[name]?.at,
          let missed = cron.nextRun(after: last, in: zone), missed <= now
        {
          log("schedule \(name) missed its run at \(Self.describe(missed, zone)); catching up")
          due.append((name, missed))
        }
      }
      firstPass = false
      for job in due where !isStopping {
        guard let s = config.schedules[job.name], let parsed = try? s.parsed() else { continue }
        let (cron, zone) = parsed
        if !runJob(job.name, slot: job.slot, config: config, directory: dir) { return 1 }
        let next = cron.nextRun(after: max(Date(), job.slot), in: zone)
        plans[job.name]?.due = next
        log("schedule \(job.name): next run \(next.map { Self.describe($0, zone) } ?? "never")")
      }
      if isStopping { break }
      let soonest = plans.values.compactMap(\.due).min()
      var sleep = options.maxSleepSeconds
      if let soonest { sleep = min(sleep, max(soonest.timeIntervalSinceNow, 0) + 0.01) }
      _ = wake.wait(timeout: .now() + sleep)
    }
    log("scheduler stopped")
    return 0
  }

  /// Runs one job on a background thread and waits for it. False when a stop request came and
  /// the job did not end within the shutdown timeout (it is then marked failed).
  func runJob(_ name: String, slot: Date, config: Config, directory: String) -> Bool {
    final class Done: @unchecked Sendable {
      let lock = NSLock()
      var finished = false
    }
    let done = Done()
    let runner = ScheduleRunner(config: config, backupDirectory: directory, logger: logger, log: log)
    let wake = self.wake
    let log = self.log
    let thread = Thread {
      do {
        switch try runner.run(name, notRunSince: slot) {
        case .ran: break
        case .busy: log("run \(name) skipped: another process is running it (its lock is held)")
        case .alreadyRun(let r): log("run \(name) skipped: already run at \(r.at) by another process")
        }
      } catch {
        log("run \(name) failed: \((error as? BackupError)?.message ?? "\(error)")")
      }
      done.lock.lock()
      done.finished = true
      done.lock.unlock()
      wake.signal()
    }
    thread.stackSize = 8 << 20
    thread.start()
    func finished() -> Bool {
      done.lock.lock()
      defer { done.lock.unlock() }
      return done.finished
    }
    while !finished() {
      if isStopping {
        log("waiting up to \(Int(options.shutdownTimeoutSeconds)) s for run \(name) to finish")
        let deadline = Date().addingTimeInterval(options.shutdownTimeoutSeconds)
        while !finished() && Date() < deadline {
          _ = wake.wait(timeout: .now() + min(1, max(deadline.timeIntervalSinceNow, 0)))
        }
        if !finished() {
          let started = ScheduleState(backupDirectory: directory).load()[name]?.at ?? slot
          try? ScheduleState(backupDirectory: directory).record(
            name,
            ScheduleRunRecord(
              status: .failed, at: started, finishedAt: Date(),
              error: "interrupted: the scheduler was stopped"))
          log(
            "run \(name) did not finish in time; marked failed (its unfinished file is cleaned up by the next create)"
          )
          return false
        }
        return true
      }
      _ = wake.wait(timeout: .now() + 1)
    }
    return true
  }

  /// `2026-11-28 02:30 CET (01:30 UTC)`.
  public static func describe(_ date: Date, _ zone: TimeZone) -> String {
    func format(_ z: TimeZone) -> String {
      let f = DateFormatter()
      f.locale = Locale(identifier: "en_US_POSIX")
      f.timeZone = z
      f.dateFormat = "yyyy-MM-dd HH:mm"
      return f.string(from: date)
    }
    let utc = TimeZone(identifier: "UTC")!
    if zone.identifier == "UTC" || zone.identifier == "GMT" { return format(utc) + " UTC" }
    return "\(format(zone)) \(zone.abbreviation(for: date) ?? zone.identifier) (\(format(utc)) UTC)"
  }
}
