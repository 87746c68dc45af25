// The receiving half of the stall rule (docs/architecture.md, "Put"): a keeper gives up a body
// whose sender sends no byte for the stall timeout (and a little more) while it waits for one. The
// sender is a client (an upload, plain or one-pass) or the keeper before this one in a write
// pipeline, which in turn cuts off a downstream that takes no byte for the stall timeout; such a
// keeper is watched for half the stall timeout more (Keeper's #dropWhenSilent), so that where both
// ends see one stall, its cut-off (and its reason) comes first.

import type {IncomingMessage} from 'node:http'

/** How many looks at the connection the stall timeout is split into. */
const LOOKS = 10

/**
 * Destroys `body` with the error `silence()` makes (then, not for every body watched) once its
 * sender sent no byte while this keeper waited for one: from `stallMs` and one look (a tenth of it)
 * to `stallMs` and two looks after the last byte (no sooner than `stallMs` after a wait of this
 * keeper's own); answers a function that stops the watch. Its bytes on disk go with it, as with any
 * body cut short, and so does its connection (node destroys the socket of a request destroyed
 * before its end): a sender that wakes finds it closed. The look more: the first silent look may
 * come just after a wait of this keeper's own.
 *
 * Why it is needed: a sender that gives up may give no sign of it that reaches here. Its FIN or
 * RST waits behind whatever stopped the bytes (a peer or proxy that stops reading a connection
 * does not see its end), so a stalled link or proxy keeps this connection open and silent for
 * good; so does a client whose process is paused, or whose host is gone without a word. Nothing
 * else ends the upload: the keeper's HTTP server sets no request timeout (fastify's requestTimeout
 * 0; node's headersTimeout covers the headers only, keepAliveTimeout the time between requests),
 * held bytes expire only once they all came, and the upload's temp file and space reservation
 * would be held until the connection ends.
 *
 * Waiting for a byte: the body flows (piped, and not held back by its consumer) with nothing
 * buffered, and the connection read no byte since the last look. Time this keeper held the body
 * back itself (its disk, or its own downstream, behind) does not count.
 */
export function dropWhenSilent(body: IncomingMessage, stallMs: number, silence: () => Error): () => void {
  let read = body.socket?.bytesRead
  let silentLooks = 0
  const look = () => {
    const now = body.socket?.bytesRead
    const waiting = now === read && body.readableFlowing === true && body.readableLength === 0
    read = now
    silentLooks = waiting ? silentLooks + 1 : 0
    // The first silent look may come just after a wait of ours: one more than the timeout holds.
    if (silentLooks > LOOKS) {
      stop()
      body.destroy(silence())
    }
  }

  const timer = setInterval(look, stallMs / LOOKS)
  timer.unref()
  const stop = () => clearInterval(timer)
  body.once('end', stop)
  body.once('close', stop)
  return stop
}
