// A benchmark helper (not part of the product): streams a file through ai-shell's age encryption
// exactly as `backup create --encrypt` does, so scripts/bench.sh can time our encryption against
// the age CLI on the same file.
//   age-throughput RECIPIENT INPUT OUTPUT
import BackupModel
import BackupPipeline
import BackupStorage
import Foundation

MallocTuning.apply()  // as the ai-shell executable does
let args = CommandLine.arguments
guard args.count == 4 else {
  FileHandle.standardError.write(Data("usage: age-throughput RECIPIENT INPUT OUTPUT\n".utf8))
  exit(64)
}
do {
  let input = try LocalFileInput(path: args[2])
  let output = try LocalFileOutput.create(path: args[3])
  let age = try AgeEncryptingOutput(output: output, recipients: [try Age.parseRecipient(args[1])])
  var buffer = [UInt8](repeating: 0, count: 1 << 20)
  var offset: Int64 = 0
  while true {
    let n = try buffer.withUnsafeMutableBytes { try input.read(at: offset, into: $0) }
    if n == 0 { break }
    try buffer.withUnsafeBytes { try age.write(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
    offset += Int64(n)
  }
  try age.finish()
  try output.close(sync: false)
} catch {
  FileHandle.standardError.write(Data("error: \(error)\n".utf8))
  exit(1)
}
