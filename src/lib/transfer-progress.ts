import type {MultiBar, SingleBar} from 'cli-progress'

import {formatBytes, shorten} from '../cli/human-format.js'

/** How far one file's transfer is: hashing a local file before its upload, then moving its bytes. */
export interface TransferEvent {
  /** The file's name (put: the name it is stored under). */
  file: string
  phase: 'hashing' | 'sending' | 'receiving'
  /** Bytes done in this phase, of `total`. */
  bytes: number
  total: number
}

export type OnProgress = (event: TransferEvent) => void

/**
 * Progress bars on stderr for put and get, drawn by cli-progress: one per file under way (bytes,
 * rate, ETA) and, for several files, one for the bytes of all of them. Shown only when both stdout
 * and stderr are terminals, so that scripts, pipes and logs get the final lines only.
 */
export class TransferBars {
  readonly #multi: MultiBar
  readonly #total: SingleBar | undefined
  readonly #files = new Map<string, {bar?: SingleBar; phase: TransferEvent['phase']; started: number; moved: number; size: number}>()
  readonly #started = Date.now()
  readonly #totalLabel: string
  #moved = 0
  #size = 0

  private constructor(multi: MultiBar, files: number) {
    this.#multi = multi
    this.#totalLabel = `all ${files} files`
    this.#total = files > 1 ? multi.create(0, 0, this.#payload(this.#totalLabel, 0, 0, this.#started)) : undefined
  }

  /** Bars if a person is watching (both stdout and stderr are terminals) and `quiet` is not asked for; else undefined. */
  static async open(files: number, quiet: boolean): Promise<TransferBars | undefined> {
    if (quiet || !process.stdout.isTTY || !process.stderr.isTTY) return undefined
    // Loaded here: a command that draws no bars need not load the library.
    const {default: cliProgress} = await import('cli-progress')
    const multi = new cliProgress.MultiBar(
      {
        format: '{label} {bar} {percentage}% {done} of {size}  {rate}  ETA {eta_formatted}',
        stream: process.stderr,
        // A Ctrl-C ends the process at once (see remove-on-interrupt.ts): a hidden cursor would stay hidden.
        hideCursor: false,
        barsize: 20,
        autopadding: true,
        etaBuffer: 50,
      },
      cliProgress.Presets.shades_classic,
    )
    return new TransferBars(multi, files)
  }

  /** Takes one TransferEvent (as an OnProgress). */
  readonly update: OnProgress = (event) => {
    let file = this.#files.get(event.file)
    if (!file) {
      file = {phase: event.phase, started: Date.now(), moved: 0, size: 0}
      this.#files.set(event.file, file)
    }

    const moving = event.phase !== 'hashing'
    if (file.phase !== event.phase) {
      file.phase = event.phase
      file.started = Date.now()
    }

    file.bar ??= this.#multi.create(event.total, 0)
    file.bar.setTotal(event.total)
    if (moving && file.size !== event.total) {
      // A file's size counts towards the total once its bytes start to move.
      this.#size += event.total - file.size
      file.size = event.total
      this.#total?.setTotal(this.#size)
    }

    if (moving) {
      // A download tried again starts from zero: the total goes back with it.
      this.#moved += event.bytes - file.moved
      file.moved = event.bytes
    }

    const label = `${event.phase === 'hashing' ? 'hashing' : event.phase === 'sending' ? 'put' : 'get'} ${shorten(event.file, 30)}`
    file.bar.update(event.bytes, this.#payload(label, event.bytes, event.total, file.started))
    this.#total?.update(this.#moved, this.#payload(this.#totalLabel, this.#moved, this.#size, this.#started))
    if (moving && event.bytes >= event.total) {
      this.#multi.remove(file.bar)
      file.bar = undefined
    } else if (event.bytes === 0) {
      // The start of each phase is drawn at once, not at the next tick, so that a short one shows too.
      this.#multi.update()
    }
  }

  /** Takes the bars off the screen, before the final lines are printed. */
  stop(): void {
    this.#multi.stop()
  }

  #payload(label: string, done: number, size: number, started: number): Record<string, string> {
    const seconds = (Date.now() - started) / 1000
    return {label: label.padEnd(38), done: formatBytes(done), size: formatBytes(size), rate: seconds > 0 ? `${formatBytes(Math.round(done / seconds))}/s` : ''}
  }
}
