import ArgumentParser
import BackupCore
import BackupModel
import Foundation

extension Backup {
  struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "config",
      abstract: "Show, query, change, edit or reset the config file (docs/CONFIG.md).",
      discussion: """
        --show (the default) prints every key, secrets as ***. --get prints one value (dotted keys: \
        cloudConfig.bucket, encryption.recipients). --set validates before saving; on any error the \
        file is unchanged (exit 64). --edit opens $VISUAL or $EDITOR on a temporary copy and saves \
        it only if it parses and validates. --reset restores the defaults (asks on a terminal, \
        else needs --force). The file is written atomically with mode 0600.
        """)

    @Flag(help: "Print the config with secrets redacted (the default).")
    var show = false

    @Flag(help: "Edit the config in $VISUAL / $EDITOR; saved only if valid.")
    var edit = false

    @Option(
      name: .customLong("set"), parsing: .upToNextOption,
      help: ArgumentHelp("Set keys (key=value ...); all or nothing.", valueName: "key=value"))
    var assignments: [String] = []

    @Option(help: ArgumentHelp("Print one value (dotted key).", valueName: "key"))
    var get: String?

    @Flag(help: "Restore the defaults (nothing is kept).")
    var reset = false

    @Flag(help: "Reset without asking.")
    var force = false

    @OptionGroup var common: CommonOptions

    func validate() throws {
      let actions = [show, edit, !assignments.isEmpty, get != nil, reset].filter { $0 }.count
      guard actions <= 1 else {
        throw ValidationError("give only one of --show, --edit, --set, --get, --reset")
      }
    }

    func run() throws {
      let store = common.configStore
      if reset { return try doReset(store) }
      if edit { return try doEdit(store) }
      if !assignments.isEmpty {
        let updated = try ConfigStore.applying(assignments, to: try store.load())
        try store.save(updated)
        if common.json {
          print(try ConfigStore.redacted(try store.load()).jsonText(pretty: true))
        } else {
          for a in assignments { print("set \(a.prefix { $0 != "=" })") }
        }
        return
      }
      let config = try store.load()
      if let get {
        let value = try ConfigStore.get(config, key: get)
        print(common.json ? value.jsonText(pretty: true) : value.displayText)
        return
      }
      let shown = try ConfigStore.redacted(config)
      if common.json {
        print(shown.jsonText(pretty: true))
      } else {
        printStderr("# \(store.path)\(store.exists ? "" : " (not created yet: defaults)")")
        for (key, value) in flatten(shown, prefix: "") { print("\(key) = \(value)") }
        if config.backupDir == nil {
          print("# backupDir in effect: \(common.effectiveBackupDirectory())")
        }
      }
    }

    /// `a.b = value` lines; objects expanded, arrays and scalars as JSON.
    func flatten(_ value: JSONValue, prefix: String) -> [(String, String)] {
      if case .object(let o) = value, !o.isEmpty || prefix.isEmpty {
        return o.keys.sorted().flatMap { flatten(o[$0]!, prefix: prefix.isEmpty ? $0 : "\(prefix).\($0)") }
      }
      return [(prefix, value.jsonText(pretty: false))]
    }

    func doReset(_ store: ConfigStore) throws {
      if !force {
        guard isTerminal(0) else {
          throw BackupError(
            .refused, "not resetting \(store.path) without confirmation", hint: "re-run with --force")
        }
        FileHandle.standardError.write(
          Data("Reset \(store.path) to the defaults (connections and settings are lost)? [y/N] ".utf8))
        let answer = readLine()?.trimmingCharacters(in: .whitespaces).lowercased()
        guard answer == "y" || answer == "yes" else {
          throw BackupError(.refused, "kept \(store.path): reset not confirmed")
        }
      }
      try store.reset()
      print(common.json ? "{\"reset\":true}" : "reset \(store.path) to the defaults")
    }

    func doEdit(_ store: ConfigStore) throws {
      let env = ProcessInfo.processInfo.environment
      let editor = [env["VISUAL"], env["EDITOR"]].compactMap { $0 }.first { !$0.isEmpty } ?? "vi"
      let words = editor.split(separator: " ").map(String.init)
      let current = try store.load()
      let original = try ConfigStore.encode(current)
      try FileManager.default.createDirectory(
        atPath: store.directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
      let temp = (store.directory as NSString).appendingPathComponent(
        ".\(store.fileName).edit-\(getpid()).json")
      unlink(temp)
      let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
      guard fd >= 0 else { throw BackupError(.storage, "cannot create \(temp)") }
      _ = original.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
      close(fd)
      defer { unlink(temp) }

      let p = Process()
      p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
      p.arguments = words + [temp]
      do {
        try p.run()
      } catch {
        throw BackupError(.failure, "cannot run editor \"\(editor)\": \(error.localizedDescription)")
      }
      p.waitUntilExit()
      guard p.terminationStatus == 0 else {
        throw BackupError(
          .failure, "editor \"\(editor)\" exited with status \(p.terminationStatus)",
          hint: "\(store.path) was not changed")
      }
      guard let edited = FileManager.default.contents(atPath: temp) else {
        throw BackupError(.storage, "cannot read \(temp) back", hint: "\(store.path) was not changed")
      }
      if edited == original {
        print("no changes")
        return
      }
      let config: Config
      do {
        config = try Config.parse(edited, source: "edited config")
      } catch let e as BackupError {
        throw BackupError(e.status, e.message, hint: "\(store.path) was not changed")
      }
      try store.save(config)
      print("saved \(store.path)")
    }
  }
}
