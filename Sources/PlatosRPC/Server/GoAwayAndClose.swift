import NIOCore

extension Channel {
    /// How long a GOAWAY may take to be written before the connection is closed anyway.
    static var goAwayWriteGrace: TimeAmount { .seconds(1) }

    /// Writes `goAway` and closes the connection once it is written, or after
    /// ``goAwayWriteGrace`` at the latest: a peer that reads nothing would otherwise keep the
    /// write, and with it the connection and its slot, pending for good.
    func writeGoAwayAndClose(_ goAway: ByteBuffer) {
        write(goAway, promise: nil)
        closeAfterPendingWrites(forcedAfter: Self.goAwayWriteGrace)
    }

    /// Closes once everything written so far has reached the socket (writes complete in order,
    /// so an empty write's completion says so), or after `forcedAfter` at the latest when given.
    /// A plain close would drop the writes still pending.
    func closeAfterPendingWrites(forcedAfter limit: TimeAmount?) {
        let forced = limit.map { limit in eventLoop.scheduleTask(in: limit) { [self] in close(promise: nil) } }
        writeAndFlush(ByteBuffer()).whenComplete { [self] _ in
            forced?.cancel()
            close(promise: nil)
        }
    }
}
