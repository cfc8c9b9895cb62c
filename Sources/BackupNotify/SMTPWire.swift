import NIOCore

/// One SMTP reply: its code and the text of each of its lines (RFC 5321 4.2: `250-first`,
/// `250-second`, `250 last`).
public struct SMTPReply: Sendable, Equatable {
  public var code: Int
  public var lines: [String]

  /// `535 5.7.8 Authentication failed` (lines joined by ` / `), for messages.
  public var summary: String {
    let text = lines.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
      .joined(separator: " / ")
    return text.isEmpty ? "\(code)" : "\(code) \(text)"
  }
}

/// What went wrong on the wire, before `SMTPClient` puts it into words with host and step.
enum SMTPWireError: Error, Sendable {
  case timeout
  case closed
  case malformed(String)
}

/// Bytes to replies: lines up to LF (CR stripped), continuation lines (`NNN-`) gathered until
/// the last line (`NNN ` or a bare `NNN`). Bounded: a line over 8 KiB or a reply over 200 lines
/// is an error, so a broken server cannot make memory grow.
struct SMTPReplyDecoder: ByteToMessageDecoder {
  typealias InboundOut = SMTPReply
  private var lines: [String] = []
  private var code: Int?

  mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
    guard let newline = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else {
      if buffer.readableBytes > 8192 { throw SMTPWireError.malformed("a reply line longer than 8 KiB") }
      return .needMoreData
    }
    var bytes = buffer.readBytes(length: newline - buffer.readerIndex + 1)!
    bytes.removeLast()
    if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
    let line = String(decoding: bytes, as: UTF8.self)
    let digits = line.prefix(3)
    guard digits.count == 3, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber),
      let n = Int(digits), (100...599).contains(n)
    else {
      throw SMTPWireError.malformed("a reply line without a status code: \"\(line.prefix(80))\"")
    }
    if let code, code != n {
      throw SMTPWireError.malformed("a multi-line reply that changes its code (\(code), then \(n))")
    }
    let separator = line.dropFirst(3).first
    guard separator == nil || separator == " " || separator == "-" else {
      throw SMTPWireError.malformed("a malformed reply line: \"\(line.prefix(80))\"")
    }
    lines.append(String(line.dropFirst(4)))
    guard lines.count <= 200 else { throw SMTPWireError.malformed("a reply of more than 200 lines") }
    if separator == "-" {
      code = n
      return .continue
    }
    let reply = SMTPReply(code: n, lines: lines)
    lines = []
    code = nil
    context.fireChannelRead(wrapInboundOut(reply))
    return .continue
  }

  mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws
    -> DecodingState
  {
    while try decode(context: context, buffer: &buffer) == .continue {}
    return .needMoreData
  }
}

/// The last handler of the pipeline: one command in flight at a time (no pipelining). `exchange`
/// writes a command (or nothing, for the greeting) and answers with the next reply, or fails on
/// a timeout, a closed connection or any error the pipeline reports (TLS handshake included).
/// Every method runs on the channel's event loop: that is what makes it `@unchecked Sendable`
/// (the session keeps a reference so that, once the closed channel has dropped its handlers,
/// `exchange` still reports the first error, e.g. the TLS handshake's, not just "closed").
final class SMTPReplyHandler: ChannelInboundHandler, @unchecked Sendable {
  typealias InboundIn = SMTPReply
  typealias OutboundOut = ByteBuffer

  private var context: ChannelHandlerContext?
  private var waiting: EventLoopPromise<SMTPReply>?
  private var timer: Scheduled<Void>?
  /// Replies that arrived while nobody waited (the greeting, or anything unasked for).
  private var unread: [SMTPReply] = []
  /// The first error: every later exchange fails with it.
  private var failure: Error?

  var hasUnreadReplies: Bool { !unread.isEmpty }

  func handlerAdded(context: ChannelHandlerContext) { self.context = context }

  func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    let reply = unwrapInboundIn(data)
    if waiting != nil {
      finish(.success(reply))
    } else {
      unread.append(reply)
    }
  }

  func errorCaught(context: ChannelHandlerContext, error: Error) {
    fail(error)
    context.close(promise: nil)
  }

  func channelInactive(context: ChannelHandlerContext) {
    fail(SMTPWireError.closed)
    context.fireChannelInactive()
  }

  private func fail(_ error: Error) {
    if failure == nil { failure = error }
    finish(.failure(failure!))
  }

  private func finish(_ result: Result<SMTPReply, Error>) {
    timer?.cancel()
    timer = nil
    guard let promise = waiting else { return }
    waiting = nil
    promise.completeWith(result)
  }

  /// Sends `command` (nil: nothing, to read the greeting) and waits up to `timeout` for a reply.
  func exchange(_ command: ByteBuffer?, timeout: TimeAmount, on loop: EventLoop) -> EventLoopFuture<SMTPReply>
  {
    // a reply that came before the connection failed is still the answer (a `554` then close)
    if let failure {
      return unread.isEmpty ? loop.makeFailedFuture(failure) : loop.makeSucceededFuture(unread.removeFirst())
    }
    guard let context else { return loop.makeFailedFuture(SMTPWireError.closed) }
    precondition(waiting == nil, "one SMTP command at a time")
    if let command { context.writeAndFlush(wrapOutboundOut(command), promise: nil) }
    if !unread.isEmpty { return loop.makeSucceededFuture(unread.removeFirst()) }
    let promise = loop.makePromise(of: SMTPReply.self)
    waiting = promise
    timer = loop.assumeIsolated().scheduleTask(in: timeout) { [self] in
      fail(SMTPWireError.timeout)
      self.context?.close(promise: nil)
    }
    return promise.futureResult
  }
}
