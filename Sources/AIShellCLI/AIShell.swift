import ArgumentParser
import BackupModel
import Foundation

/// The root command, `ai-shell`.
public struct AIShell: ParsableCommand {
  public static let configuration = CommandConfiguration(
    commandName: "ai-shell",
    abstract: "Database backup and recovery: fast, small in memory, standard files.",
    discussion: """
      Backups are one standard file each (restorable with gzip/bzip2/zstd and the database's own \
      client) plus a manifest beside it. Data goes to stdout, diagnostics and progress to stderr.

      EXIT CODES
      \(ExitStatus.allCases.map { "  \(String($0.rawValue).padding(toLength: 4, withPad: " ", startingAt: 0))\($0.summary)" }.joined(separator: "\n"))
      """,
    version: ToolInfo.version,
    subcommands: [Backup.self, ConnectionCommand.self]
  )

  public init() {}

  /// Parses, runs, and turns every error into one line on stderr and a documented exit code.
  public static func runMain(_ arguments: [String]? = nil) -> Never {
    do {
      var command = try parseAsRoot(arguments)
      try command.run()
      Foundation.exit(0)
    } catch let error as BackupError {
      printError(error.description)
      Foundation.exit(error.status.rawValue)
    } catch let error as ExitCode {
      Foundation.exit(error.rawValue)
    } catch {
      let code = exitCode(for: error)
      if code == .success || code.rawValue == ExitStatus.usage.rawValue || code == .validationFailure {
        exit(withError: error)
      }
      printError("\(error)")
      Foundation.exit(ExitStatus.failure.rawValue)
    }
  }
}

func printError(_ line: String) {
  FileHandle.standardError.write(Data("error: \(line)\n".utf8))
}

func printStderr(_ line: String) {
  FileHandle.standardError.write(Data("\(line)\n".utf8))
}

/// `ai-shell backup ...`
public struct Backup: ParsableCommand {
  public static let configuration = CommandConfiguration(
    abstract: "Create, restore, list, inspect, verify and delete backups.",
    subcommands: [
      Create.self, Restore.self, List.self, Status.self, Verify.self, Delete.self, Keygen.self,
      ConfigCommand.self,
      Export.self, Import.self, ScheduleCommand.self, SchedulerCommand.self, Prune.self, Cleanup.self,
    ]
  )
  public init() {}
}
