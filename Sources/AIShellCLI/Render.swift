import BackupCore
import BackupModel
import Foundation

enum Render {
  static func json<T: Encodable>(_ value: T) throws -> String {
    let encoder = JSONEncoder()
    encoder.dateEncodingStrategy = UTCStamp.jsonEncoding
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
  }

  static func bytes(_ n: Int64?) -> String { ByteText.format(n) }

  static func date(_ d: Date?) -> String {
    guard let d else { return "-" }
    let f = DateFormatter()
    f.locale = Locale(identifier: "en_US_POSIX")
    f.timeZone = TimeZone(identifier: "UTC")
    f.dateFormat = "yyyy-MM-dd HH:mm:ss'Z'"
    return f.string(from: d)
  }

  static func seconds(_ s: Double) -> String { String(format: "%.2f s", s) }

  /// Left-aligned columns separated by two spaces.
  static func table(_ header: [String], _ rows: [[String]]) -> String {
    var widths = header.map(\.count)
    for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
    func line(_ cells: [String]) -> String {
      cells.enumerated().map { i, c in
        i == cells.count - 1 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0)
      }.joined(separator: "  ")
    }
    return ([line(header)] + rows.map(line)).joined(separator: "\n")
  }

  /// RFC 4180 CSV.
  static func csv(_ header: [String], _ rows: [[String]]) -> String {
    func field(_ s: String) -> String {
      s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" })
        ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }
    return ([header] + rows).map { $0.map(field).joined(separator: ",") }.joined(separator: "\r\n") + "\r\n"
  }
}

/// Progress on stderr: a redrawn bar with bytes, rate and ETA on a TTY, a plain line every few
/// seconds otherwise.
final class ProgressPrinter: ProgressObserver {
  private let tty = isTerminal(2)
  private var label = ""
  private var total: Int64?
  private var started = Date()
  private var lastPrint = Date.distantPast
  private var current: Int64 = 0
  /// Bytes the cloud store has acknowledged (nil: not an upload).
  private var uploaded: Int64?

  func begin(_ label: String, totalBytes: Int64?) {
    self.label = label
    total = totalBytes.flatMap { $0 > 0 ? $0 : nil }
    started = Date()
    lastPrint = .distantPast
    current = 0
    uploaded = nil
  }

  func confirmed(_ bytes: Int64) { uploaded = bytes }

  func advance(to bytes: Int64) {
    current = bytes
    let now = Date()
    guard now.timeIntervalSince(lastPrint) >= (tty ? 0.2 : 2) else { return }
    lastPrint = now
    emit(final: false)
  }

  func end() { emit(final: true) }

  private func emit(final: Bool) {
    let elapsed = max(Date().timeIntervalSince(started), 0.001)
    let rate = Double(current) / elapsed
    var text = "\(label): \(Render.bytes(current))"
    if let total {
      let fraction = min(1, Double(current) / Double(total))
      if tty {
        let width = 24
        let filled = Int(fraction * Double(width))
        text =
          "\(label) [\(String(repeating: "#", count: filled))\(String(repeating: " ", count: width - filled))] "
          + "\(Render.bytes(current)) / ~\(Render.bytes(total))"
      } else {
        text += " of ~\(Render.bytes(total))"
      }
      if !final && rate > 0 && current < total {
        let eta = Int(Double(total - current) / rate)
        text += String(format: "  ETA %d:%02d", eta / 60, eta % 60)
      }
    }
    text += "  \(Render.bytes(Int64(rate)))/s"
    if let uploaded {
      text += "  uploaded \(Render.bytes(uploaded)) (\(Render.bytes(Int64(Double(uploaded) / elapsed)))/s)"
    }
    if final { text += String(format: "  done in %.1f s", elapsed) }
    if tty {
      FileHandle.standardError.write(Data(("\r\u{1B}[K" + text + (final ? "\n" : "")).utf8))
    } else {
      printStderr(text)
    }
  }
}
