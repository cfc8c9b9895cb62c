import ArgumentParser
import BackupModel
import BackupPipeline
import Foundation

extension Backup {
  struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Make a new age X25519 identity (age-keygen format) for encrypted backups.",
      discussion: """
        With -o the identity is written to FILE (mode 0600) and its public key printed on stdout; \
        without it the identity goes to stdout and the public key to stderr, as age-keygen does. \
        Backup hosts need only the public key (--recipient); keep the identity for restores.
        """)

    @Option(name: .shortAndLong, help: ArgumentHelp("Write the identity to this file.", valueName: "file"))
    var output: String?

    @Flag(help: "Overwrite an existing identity file.")
    var force = false

    @Flag(help: "Print {\"recipient\", \"file\"} as JSON.")
    var json = false

    func run() throws {
      let (identity, recipient) = Age.generateIdentity()
      let stamp = UTCStamp.extended(Date())
      let text = "# created: \(stamp)\n# public key: \(recipient)\n\(identity)\n"
      guard let output else {
        print(text, terminator: "")
        printStderr("Public key: \(recipient)")
        return
      }
      if FileManager.default.fileExists(atPath: output) && !force {
        throw BackupError(.refused, "\(output) already exists", hint: "choose another file or add --force")
      }
      try writeSecretFile(output, Data(text.utf8))
      if json {
        print(try Render.json(["recipient": recipient, "file": output]))
      } else {
        print(recipient)
      }
    }
  }
}

/// Writes a file that only its owner may read: created 0600 before any byte is written.
func writeSecretFile(_ path: String, _ data: Data) throws {
  let temp = path + ".tmp-\(getpid())"
  let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
  guard fd >= 0 else {
    throw BackupError(.storage, "cannot create \(temp): \(String(cString: strerror(errno)))")
  }
  let ok =
    data.withUnsafeBytes { buf in write(fd, buf.baseAddress, buf.count) == buf.count } && fsync(fd) == 0
  close(fd)
  guard ok, rename(temp, path) == 0 else {
    let e = errno
    unlink(temp)
    throw BackupError(.storage, "cannot write \(path): \(String(cString: strerror(e)))")
  }
}
