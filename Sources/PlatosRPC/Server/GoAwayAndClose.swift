import NIOCore

extension Channel {
    /// How long a GOAWAY may take to be written before the connection is closed anyway.
    static var goAwayWriteGrace: TimeAmount { .seconds(1) }

    /// Writes `goAway` and closes the connection once it is written, or after
    /// ``goAwayWriteGrace`` at the latest: a peer that reads nothing would otherwise keep the
    /// write, and with it the connection and its slot, pending for good.
    func writeGoAwayAndClose(_ goAway: ByteBuffer) {
        let forced = eventLoop.scheduleTask(in: Self.goAwayWriteGrace) { [self] in close(promise: nil) }
        writeAndFlush(goAway).whenComplete { [self] _ in
            forced.cancel()
            close(promise: nil)
        }
    }
}
