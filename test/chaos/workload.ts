// The chaos workload: a few workers, each with its own seeded stream and its own names, running
// put, get and rm through the real CLI while keepers die and come back, and keeping the model.

import {rm} from 'node:fs/promises'
import {join} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'

import {sha256File} from '../helpers/cluster.js'
import {pickSize, writeContent} from './content.js'
import {formatBytes, type Journal} from './journal.js'
import type {FileEntry, Generation, Model} from './model.js'
import type {Rng} from './prng.js'
import {errorLine, isClearError, normalizeError, runDfs, type CliResult} from './proc.js'

export interface WorkloadOptions {
  masterUrl: () => string
  seed: number
  workDir: string
  /** Largest file a put writes. */
  maxBytes: number
  /** Deadline of one CLI command; a command that takes longer is a hang. */
  commandTimeoutMs: number
  /** put --wait-timeout when a put waits for all replicas. */
  waitTimeout: string
}

/** Whether the stop was asked for (deadline or Ctrl-C). */
export type StopSignal = () => boolean

const RANGE_SIZES = ['64KiB', '256KiB', '1MiB', undefined, undefined] as const

export class Worker {
  #sequence = 0
  readonly #mine = new Set<string>()

  constructor(
    readonly id: number,
    private readonly rng: Rng,
    private readonly model: Model,
    private readonly journal: Journal,
    private readonly options: WorkloadOptions,
  ) {}

  get #label(): string {
    return `w${this.id}`
  }

  async run(stop: StopSignal): Promise<void> {
    while (!stop()) {
      const confirmed = this.#entries('confirmed')
      const kind = confirmed.length === 0 ? 'put' : this.rng.weighted({put: 50, get: 32, rm: 18})
      if (kind === 'put') await this.put()
      else if (kind === 'get') await this.get(this.rng.pick(confirmed))
      else await this.remove(this.rng.pick(confirmed))
      // A short, seeded pause so that the workers do not move in lockstep.
      await sleep(this.rng.int(0, 150))
    }
  }

  #entries(state: FileEntry['state']): FileEntry[] {
    return [...this.#mine].map((name) => this.model.files.get(name)!).filter((entry) => entry.state === state)
  }

  #newName(): string {
    const n = ++this.#sequence
    const style = this.rng.weighted({plain: 70, spaced: 12, unicode: 10, long: 8})
    const tag = `${this.#label}-${String(n).padStart(4, '0')}`
    if (style === 'spaced') return `clip ${tag} (take 2).mp4`
    if (style === 'unicode') return `vidéo-${tag}-ü·日本.mp4`
    if (style === 'long') return `${'long-name-'.repeat(20)}${tag}.bin`
    return `${tag}.bin`
  }

  async put(): Promise<void> {
    const removed = this.#entries('removed')
    const reuse = removed.length > 0 && this.rng.chance(0.25)
    const name = reuse ? this.rng.pick(removed).name : this.#newName()
    this.#mine.add(name)
    const previous = this.model.files.get(name)
    const size = pickSize(this.rng, this.options.maxBytes)
    const generation = (previous?.generations ?? 0) + 1
    const label = `${name}#${generation}`
    const wait = this.rng.weighted({one: 65, all: 25, two: 10})
    const local = join(this.options.workDir, `put-${this.#label}-${this.#sequence}-${generation}`)
    const sha256 = await writeContent(local, this.options.seed, label, size)
    const gen: Generation = {label, size, sha256}
    const args = ['put', local, '--name', name, '--master', this.options.masterUrl(), '--json']
    if (wait !== 'one') args.push('--wait', wait === 'all' ? 'all' : '2', '--wait-timeout', this.options.waitTimeout)
    const what = `put "${name}" gen ${generation} (${formatBytes(size)}, sha ${sha256.slice(0, 12)}, --wait ${wait === 'one' ? 1 : wait === 'all' ? 'all' : 2})`
    this.journal.event(this.#label, `${what} …`)
    const result = await runDfs(args, this.options.commandTimeoutMs)
    await rm(local, {force: true})
    if (result.code === 0) {
      let reported: {name?: string; fileId?: string; sha256?: string; size?: number; keeper?: string; replicas?: number} = {}
      try {
        reported = (JSON.parse(result.stdout) as Array<typeof reported>)[0] ?? {}
      } catch {
        this.journal.warning({kind: 'put-output', message: `put "${name}" exited 0 but printed no JSON: ${result.stdout.slice(0, 200)}`, names: [name]})
      }

      gen.fileId = reported.fileId
      gen.keeper = reported.keeper
      this.model.set(name, 'confirmed', gen, 'put ok')
      this.journal.ops.put.ok++
      this.journal.bytesPut += size
      this.journal.event(this.#label, `${what} ok in ${result.ms} ms: fileId ${gen.fileId} on ${gen.keeper}, ${reported.replicas} replicas`)
      if (reported.sha256 !== undefined && (reported.sha256 !== sha256 || reported.size !== size)) {
        this.journal.violation({
          kind: 'put-wrong-record',
          message: `put "${name}" reported size ${reported.size} sha256 ${reported.sha256}, the file has ${size} bytes sha256 ${sha256}`,
          names: [name],
          ids: [gen.fileId ?? ''],
        })
      }

      return
    }

    const line = errorLine(result)
    this.journal.ops.put.failed++
    this.journal.failure('put', normalizeError(line))
    this.#checkClear('put', name, result)
    // `put --wait` that timed out says the file "is stored": it was confirmed, only not copied yet.
    if (!result.hung && /is stored but has \d+ of the \d+ replicas waited for/.test(line)) {
      this.journal.putWaitTimeouts++
      this.model.set(name, 'confirmed', gen, `put stored, wait timed out: ${line}`)
      this.journal.event(this.#label, `${what} stored, wait timed out after ${result.ms} ms: ${line}`)
      return
    }

    this.model.set(name, 'unknown', gen, `put failed: ${line}`)
    this.journal.event(this.#label, `${what} FAILED (exit ${result.code}) in ${result.ms} ms: ${line}`)
  }

  async get(entry: FileEntry): Promise<void> {
    const {name, current} = entry
    const out = join(this.options.workDir, `get-${this.#label}-${++this.#sequence}`)
    const rangeSize = this.rng.pick(RANGE_SIZES)
    const args = ['get', name, '-o', out, '--master', this.options.masterUrl(), '--json']
    if (rangeSize) args.push('--range-size', rangeSize)
    const what = `get "${name}" (${formatBytes(current.size)}${rangeSize ? `, ranges of ${rangeSize}` : ''})`
    const result = await runDfs(args, this.options.commandTimeoutMs)
    try {
      if (result.code === 0) {
        const sha256 = await sha256File(out).catch((error: unknown) => `(unreadable: ${String(error)})`)
        if (sha256 !== current.sha256) {
          this.journal.ops.get.failed++
          this.journal.violation({
            kind: 'get-wrong-bytes',
            message: `get "${name}" exited 0 but wrote sha256 ${sha256}, the confirmed file has ${current.sha256}`,
            names: [name],
            ids: [current.fileId ?? ''],
            details: result.stdout.slice(0, 2000),
          })
          return
        }

        this.journal.ops.get.ok++
        this.journal.bytesGot += current.size
        this.journal.event(this.#label, `${what} ok in ${result.ms} ms`)
        return
      }

      const line = errorLine(result)
      this.journal.ops.get.failed++
      this.journal.failure('get', normalizeError(line))
      this.journal.event(this.#label, `${what} FAILED (exit ${result.code}) in ${result.ms} ms: ${line}`)
      this.#checkClear('get', name, result)
      // The master's own answer for an unknown name (a keeper's "holds no file named" is another thing).
      if (/^Error: no file named/.test(line)) {
        this.journal.violation({kind: 'confirmed-file-missing', message: `get of the confirmed "${name}" failed: ${line}`, names: [name], ids: [current.fileId ?? '']})
      } else if (/does not match|integrity|another generation|sent \d+ of \d+ bytes|too many bytes/i.test(line)) {
        this.journal.warning({kind: 'get-integrity-error', message: `get "${name}" failed on integrity during chaos: ${line}`, names: [name], ids: [current.fileId ?? '']})
      }
    } finally {
      await rm(out, {force: true})
    }
  }

  async remove(entry: FileEntry): Promise<void> {
    const {name, current} = entry
    const what = `rm "${name}" (fileId ${current.fileId})`
    this.journal.event(this.#label, `${what} …`)
    const result = await runDfs(['rm', name, '--master', this.options.masterUrl(), '--json'], this.options.commandTimeoutMs)
    if (result.code === 0) {
      this.model.set(name, 'removed', current, 'rm ok')
      this.journal.ops.rm.ok++
      this.journal.event(this.#label, `${what} ok in ${result.ms} ms`)
      return
    }

    const line = errorLine(result)
    this.journal.ops.rm.failed++
    this.journal.failure('rm', normalizeError(line))
    this.journal.event(this.#label, `${what} FAILED (exit ${result.code}) in ${result.ms} ms: ${line}`)
    this.#checkClear('rm', name, result)
    if (/^Error: no file named/.test(line)) {
      this.journal.violation({kind: 'confirmed-file-missing', message: `rm of the confirmed "${name}" failed: ${line}`, names: [name], ids: [current.fileId ?? '']})
    }

    this.model.set(name, 'unknown', current, `rm failed: ${line}`)
  }

  #checkClear(kind: string, name: string, result: CliResult): void {
    if (result.hung) {
      this.journal.violation({kind: 'hang', message: `${kind} "${name}" did not finish within ${this.options.commandTimeoutMs} ms and was killed`, names: [name]})
    } else if (!isClearError(result.stderr)) {
      this.journal.violation({
        kind: 'unclear-error',
        message: `${kind} "${name}" failed (exit ${result.code}) without one clear "Error: …" line`,
        names: [name],
        details: result.stderr.slice(0, 3000),
      })
    }
  }
}
