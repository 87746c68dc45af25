// The chaos workload: a few workers, each running its script (drawn up front from the seed, see
// script.ts) through the real CLI while faults strike, and recording in the model what each
// command said and when it ran; every answer is judged by the model as soon as it comes.

import {rm, stat} from 'node:fs/promises'
import {join} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'

import {sha256File} from '../helpers/cluster.js'
import {writeContent} from './content.js'
import {formatBytes, type Finding, type Journal} from './journal.js'
import type {Model} from './model.js'
import {errorLine, isClearError, normalizeError, runDfs, type CliResult} from './proc.js'
import type {ScriptedOp} from './script.js'

export interface WorkloadOptions {
  masterUrl: () => string
  seed: number
  workDir: string
  /** Deadline of one CLI command; a command that takes longer is a hang. */
  commandTimeoutMs: number
  /** put --wait-timeout when a put waits for more than one replica. */
  waitTimeout: string
}

/** Whether the stop was asked for (deadline or Ctrl-C). */
export type StopSignal = () => boolean

/** The master's own answer for a name it does not have (a keeper's "holds no file named" is another thing). */
const ABSENT = /^Error: no file named/

export class Worker {
  /** Operations of the script carried out (the rest were cut off by the deadline). */
  done = 0

  constructor(
    readonly id: number,
    private readonly script: ScriptedOp[],
    private readonly model: Model,
    private readonly journal: Journal,
    private readonly options: WorkloadOptions,
  ) {}

  get #label(): string {
    return `w${this.id}`
  }

  async run(stop: StopSignal): Promise<void> {
    for (const op of this.script) {
      if (stop()) return
      if (op.kind === 'put') await this.put(op)
      else if (op.kind === 'get') await this.get(op)
      else await this.remove(op)
      this.done++
      // A seeded pause so that the workers do not move in lockstep.
      await sleep(op.pauseMs)
    }

    this.journal.event(this.#label, `script over after ${this.done} operations (draw a longer one)`, true)
  }

  #now(): number {
    return performance.now() - this.journal.startedMono
  }

  #judge(finding: Finding | undefined): void {
    if (finding) this.journal.violation(finding)
  }

  async put(op: Extract<ScriptedOp, {kind: 'put'}>): Promise<void> {
    const {name, label, size} = op
    const local = join(this.options.workDir, `put-${this.#label}-${this.done}`)
    const sha256 = await writeContent(local, this.options.seed, label, size)
    const args = ['put', local, '--name', name, '--master', this.options.masterUrl(), '--json']
    if (op.wait !== '1') args.push('--wait', op.wait, '--wait-timeout', this.options.waitTimeout)
    const what = `put "${name}" as ${label} (${formatBytes(size)}, sha ${sha256.slice(0, 12)}, --wait ${op.wait})`
    this.journal.event(this.#label, `${what} …`)
    const record = this.model.begin({worker: this.id, kind: 'put', name, label, size, sha256}, this.#now())
    const result = await runDfs(args, this.options.commandTimeoutMs)
    const end = this.#now()
    await rm(local, {force: true})
    if (result.code === 0) {
      let reported: {name?: string; fileId?: string; sha256?: string; size?: number; keeper?: string; replicas?: number} = {}
      try {
        reported = (JSON.parse(result.stdout) as Array<typeof reported>)[0] ?? {}
      } catch {
        this.journal.violation({kind: 'put-output', message: `put "${name}" exited 0 but printed no JSON: ${result.stdout.slice(0, 200)}`, names: [name]})
      }

      this.model.finish(record, end, 'ok', {fileId: reported.fileId})
      this.journal.ops.put.ok++
      this.journal.bytesPut += size
      this.journal.event(this.#label, `${what} ok in ${result.ms} ms: fileId ${reported.fileId} on ${reported.keeper}, ${reported.replicas} replicas`)
      if (reported.sha256 !== sha256 || reported.size !== size) {
        this.journal.violation({
          kind: 'put-wrong-record',
          message: `put "${name}" reported size ${reported.size} sha256 ${reported.sha256}, the file has ${size} bytes sha256 ${sha256}`,
          names: [name],
          ids: [reported.fileId ?? ''],
        })
      }

      return
    }

    const line = errorLine(result)
    this.journal.ops.put.failed++
    this.journal.failure('put', normalizeError(line))
    this.#checkClear('put', name, result)
    // `put --wait` that timed out says the file "is stored": it took effect, only not copied yet.
    if (!result.hung && /is stored but has \d+ of the \d+ replicas waited for/.test(line)) {
      this.journal.putWaitTimeouts++
      this.model.finish(record, end, 'ok', {why: line})
      this.journal.event(this.#label, `${what} stored, wait timed out after ${result.ms} ms: ${line}`)
      return
    }

    // Any other failure may still have taken effect (the commit may have landed before the answer was lost).
    this.model.finish(record, end, 'failed', {why: line})
    this.journal.event(this.#label, `${what} FAILED (exit ${result.code}) in ${result.ms} ms: ${line}`)
  }

  async get(op: Extract<ScriptedOp, {kind: 'get'}>): Promise<void> {
    const {name, rangeSize} = op
    const out = join(this.options.workDir, `get-${this.#label}-${this.done}`)
    const args = ['get', name, '-o', out, '--master', this.options.masterUrl(), '--json']
    if (rangeSize) args.push('--range-size', rangeSize)
    const what = `get "${name}"${rangeSize ? ` (ranges of ${rangeSize})` : ''}`
    this.journal.event(this.#label, `${what} …`)
    const record = this.model.begin({worker: this.id, kind: 'get', name}, this.#now())
    const result = await runDfs(args, this.options.commandTimeoutMs)
    const end = this.#now()
    try {
      if (result.code === 0) {
        const sha256 = await sha256File(out).catch((error: unknown) => `(unreadable: ${String(error)})`)
        this.model.finish(record, end, 'ok', {sha256})
        const finding = this.model.checkRead(record)
        if (finding) {
          this.journal.ops.get.failed++
          this.journal.violation({...finding, details: `${finding.details}\n${result.stdout.slice(0, 2000)}`})
          return
        }

        this.journal.ops.get.ok++
        this.journal.bytesGot += await sizeOf(out)
        this.journal.event(this.#label, `${what} ok in ${result.ms} ms: sha ${sha256.slice(0, 12)}`)
        return
      }

      const line = errorLine(result)
      this.journal.event(this.#label, `${what} FAILED (exit ${result.code}) in ${result.ms} ms: ${line}`)
      this.#checkClear('get', name, result)
      if (!result.hung && ABSENT.test(line)) {
        this.journal.ops.get.absent++
        this.model.finish(record, end, 'absent', {why: line})
        this.#judge(this.model.checkAbsent(record))
        return
      }

      this.journal.ops.get.failed++
      this.journal.failure('get', normalizeError(line))
      this.model.finish(record, end, 'failed', {why: line})
      if (/does not match|integrity|another generation|sent \d+ of \d+ bytes|too many bytes/i.test(line)) this.journal.chaos.getIntegrityErrors++
    } finally {
      await rm(out, {force: true})
    }
  }

  async remove(op: Extract<ScriptedOp, {kind: 'rm'}>): Promise<void> {
    const {name} = op
    const what = `rm "${name}"`
    this.journal.event(this.#label, `${what} …`)
    const record = this.model.begin({worker: this.id, kind: 'rm', name}, this.#now())
    const result = await runDfs(['rm', name, '--master', this.options.masterUrl(), '--json'], this.options.commandTimeoutMs)
    // A request killed in flight may still reach the master: a hung rm may take effect any time.
    const end = result.hung ? Number.POSITIVE_INFINITY : this.#now()
    if (result.code === 0) {
      let fileId: string | undefined
      try {
        fileId = (JSON.parse(result.stdout) as [{fileId?: string}])[0].fileId
      } catch {
        // The fileId is only for the record.
      }

      this.model.finish(record, end, 'ok', {fileId})
      this.journal.ops.rm.ok++
      this.journal.event(this.#label, `${what} ok in ${result.ms} ms: fileId ${fileId}`)
      this.#judge(this.model.checkRemoved(record))
      return
    }

    const line = errorLine(result)
    this.journal.event(this.#label, `${what} FAILED (exit ${result.code}) in ${result.ms} ms: ${line}`)
    this.#checkClear('rm', name, result)
    if (!result.hung && ABSENT.test(line)) {
      this.journal.ops.rm.absent++
      this.model.finish(record, end, 'absent', {why: line})
      this.#judge(this.model.checkAbsent(record))
      return
    }

    this.journal.ops.rm.failed++
    this.journal.failure('rm', normalizeError(line))
    this.model.finish(record, end, 'failed', {why: line})
  }

  #checkClear(kind: string, name: string, result: CliResult): void {
    if (result.hung) {
      this.journal.violation({kind: 'hang', message: `${kind} "${name}" did not finish within ${this.options.commandTimeoutMs} ms and was killed`, names: [name]})
    } else if (!isClearError(result)) {
      this.journal.violation({
        kind: 'unclear-error',
        message: `${kind} "${name}" failed (exit ${result.code}) without one clear "Error: …" line (or, with --json, a JSON error)`,
        names: [name],
        details: result.stderr.slice(0, 3000),
      })
    }
  }
}

async function sizeOf(path: string): Promise<number> {
  return (await stat(path).catch(() => ({size: 0}))).size
}
