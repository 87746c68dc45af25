import {rmSync} from 'node:fs'
import {constants} from 'node:os'

// A signal's default action ends the process at once, without `finally` blocks, so a download's
// temp file would outlive a Ctrl-C. These are the temp files of this process still to be removed.
const pending = new Set<string>()
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const
let listening = false

/**
 * Removes `path` if the process is interrupted by SIGINT, SIGTERM or SIGHUP before the returned
 * function is called (once the file was renamed into place or removed). The process then exits
 * with 128 + the signal's number, as a shell expects of a process a signal ended.
 */
export function removeOnInterrupt(path: string): () => void {
  if (!listening) {
    listening = true
    for (const signal of SIGNALS) process.on(signal, onSignal)
  }

  pending.add(path)
  return () => void pending.delete(path)
}

function onSignal(signal: NodeJS.Signals): void {
  for (const path of pending) {
    try {
      rmSync(path, {force: true})
    } catch {
      // Exit all the same: staying alive after Ctrl-C would be worse than a leftover temp file.
    }
  }

  process.exit(128 + constants.signals[signal])
}
