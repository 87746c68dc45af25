// The oracle: every operation the workload ran, with the interval in which it ran and what the CLI
// said, and which answers (and which final state) that history allows.
//
// Operations on one name may race (shared-names mode), so an answer is judged against every order
// the operations could have taken effect in: each took effect at one instant between its start and
// its end (a put that failed may still have taken effect, at any instant after its start). A
// name holds at most one generation at a time: a put succeeds only on a free name, rm frees it,
// and a generation that is gone never comes back. The checks below only ever accept what some
// such order explains, so they never accept wrong bytes; they do not try every order, so a few
// impossible histories may pass unnoticed.

import {formatBytes, type Finding} from './journal.js'

export type OpKind = 'put' | 'get' | 'rm'

/** ok: done. absent: the master said there is no file of that name. failed: any other error. */
export type Outcome = 'ok' | 'absent' | 'failed'

export interface OpRecord {
  /** Order of starting, over the whole run. */
  seq: number
  worker: number
  kind: OpKind
  name: string
  /** ms on a monotonic clock; `end` is unset while the command runs. */
  start: number
  end?: number
  outcome?: Outcome
  /** put: the content sent. get ok: the content read. */
  sha256?: string
  size?: number
  /** put: what its bytes are derived from (content.ts). */
  label?: string
  fileId?: string
  /** The error line of a failed command, or a note. */
  why?: string
}

/** What the final listing of the master says of one name. */
export interface ListedFile {
  name: string
  fileId: string
  size: number
  sha256: string
}

export interface FinalVerdict {
  findings: Finding[]
  /** Names present at the end, each explained by a put: their bytes must read back. */
  present: Array<ListedFile & {confirmed: boolean}>
  /** Names absent at the end, as the history allows. */
  absent: number
  lost: number
  bytesLost: number
}

const NEVER = Number.POSITIVE_INFINITY

export class Model {
  readonly records: OpRecord[] = []
  readonly #byName = new Map<string, OpRecord[]>()

  begin(fields: Omit<OpRecord, 'seq' | 'start'>, start: number): OpRecord {
    const record: OpRecord = {...fields, seq: this.records.length, start}
    this.records.push(record)
    let list = this.#byName.get(record.name)
    if (!list) this.#byName.set(record.name, (list = []))
    list.push(record)
    return record
  }

  finish(record: OpRecord, end: number, outcome: Outcome, extra: Partial<Pick<OpRecord, 'sha256' | 'size' | 'fileId' | 'why'>> = {}): void {
    Object.assign(record, extra, {end, outcome})
  }

  get names(): string[] {
    return [...this.#byName.keys()]
  }

  historyOf(name: string): OpRecord[] {
    return this.#byName.get(name) ?? []
  }

  /** A get that read bytes: they must be a generation that may have been current while it ran. */
  checkRead(get: OpRecord): Finding | undefined {
    const sent = this.#putsOf(get.name).filter((put) => put.sha256 === get.sha256 && put.start < get.end!)
    if (sent.length === 0) return this.#finding(get, 'get-wrong-bytes', `get "${get.name}" exited 0 with sha256 ${get.sha256}, which no put of that name sent`)
    const kept = this.#certainlyPresent(get.name, get.start, get.end!)
    if (kept ? kept.sha256 === get.sha256 : sent.some((put) => !this.#goneBefore(put, get.start))) return undefined
    return this.#finding(get, 'get-stale',
      kept
        ? `get "${get.name}" read sha256 ${get.sha256} while the generation of ${describe(kept)} was certainly current`
        : `get "${get.name}" read the bytes of a generation that was gone before it began (sha256 ${get.sha256})`)
  }

  /** The master said "no file named": no generation a put confirmed may have been certainly there. */
  checkAbsent(op: OpRecord): Finding | undefined {
    const kept = this.#certainlyPresent(op.name, op.start, op.end!)
    if (!kept) return undefined
    return this.#finding(op, 'confirmed-file-missing',
      `${op.kind} "${op.name}" was told there is no such file, but the put that confirmed it (${describe(kept)}) was not followed by any rm that could have removed it`)
  }

  /** rm succeeded: some generation may have been there to remove. */
  checkRemoved(rm: OpRecord): Finding | undefined {
    const puts = this.#putsOf(rm.name).filter((put) => put.start < rm.end!)
    if (puts.some((put) => !this.#goneBefore(put, rm.start))) return undefined
    return this.#finding(rm, 'rm-of-nothing', `rm "${rm.name}" succeeded though no generation of it can have existed while it ran`)
  }

  /** Two confirmed puts of one name need an rm that may have come between them. */
  checkDoubleCreates(): Finding[] {
    const findings: Finding[] = []
    for (const [name, history] of this.#byName) {
      const puts = history.filter((op) => op.kind === 'put' && op.outcome === 'ok')
      const rms = history.filter((op) => op.kind === 'rm' && op.outcome !== 'absent')
      for (let i = 0; i < puts.length; i++) {
        for (let j = i + 1; j < puts.length; j++) {
          const [a, b] = [puts[i]!, puts[j]!]
          const from = Math.min(a.start, b.start)
          const to = Math.max(a.end!, b.end!)
          if (rms.some((rm) => rm.start < to && endOf(rm) > from)) continue
          findings.push({
            kind: 'double-create',
            message: `two puts of "${name}" both succeeded with no rm between them: ${describe(a)} and ${describe(b)}`,
            names: [name],
            ids: [a.fileId ?? '', b.fileId ?? ''].filter(Boolean),
            details: this.timelineOf(name),
          })
          break
        }
      }
    }

    return findings
  }

  /** The final listing of the master against the whole history, once every operation is over. */
  judgeFinal(listing: Map<string, ListedFile>): FinalVerdict {
    const verdict: FinalVerdict = {findings: [], present: [], absent: 0, lost: 0, bytesLost: 0}
    const lose = (kept: OpRecord, finding: Finding) => {
      verdict.lost++
      verdict.bytesLost += kept.size ?? 0
      verdict.findings.push(finding)
    }

    for (const name of this.#byName.keys()) {
      const file = listing.get(name)
      // A confirmed generation no rm can have removed: it must be what the name holds.
      const kept = this.#certainlyPresent(name, NEVER, NEVER)
      const evidence = {names: [name], ids: [kept?.fileId ?? '', file?.fileId ?? ''].filter(Boolean), details: this.timelineOf(name)}
      if (!file) {
        if (kept) lose(kept, {kind: 'lost-file', message: `"${name}" is gone, but ${describe(kept)} (${formatBytes(kept.size ?? 0)}) was never followed by an rm that could have removed it`, ...evidence})
        else verdict.absent++
        continue
      }

      const sent = this.#putsOf(name).filter((put) => put.sha256 === file.sha256 && put.size === file.size)
      if (sent.length === 0) {
        const finding = {kind: 'wrong-file', message: `"${name}" holds ${file.size} bytes with sha256 ${file.sha256} (fileId ${file.fileId}), which no put of that name sent`, ...evidence}
        if (kept) lose(kept, finding)
        else verdict.findings.push(finding)
        continue
      }

      const current = kept ? (kept.sha256 === file.sha256 ? [kept] : []) : sent.filter((put) => !this.#goneBefore(put, NEVER))
      if (current.length === 0) {
        const message = kept
          ? `"${name}" holds sha256 ${file.sha256} (fileId ${file.fileId}), but ${describe(kept)} was never followed by an rm that could have removed it`
          : `"${name}" holds a generation (sha256 ${file.sha256}, fileId ${file.fileId}) that was removed or replaced before the end`
        if (kept) lose(kept, {kind: 'stale-file', message, ...evidence})
        else verdict.findings.push({kind: 'stale-file', message, ...evidence})
        continue
      }

      verdict.present.push({...file, confirmed: current.some((put) => put.outcome === 'ok')})
    }

    for (const [name, file] of listing) {
      if (this.#byName.has(name)) continue
      verdict.findings.push({kind: 'unexpected-file', message: `"${name}" is listed (fileId ${file.fileId}) but was never put`, names: [name], ids: [file.fileId]})
    }

    verdict.findings.push(...this.checkDoubleCreates())
    return verdict
  }

  /** Every operation on `name`, one line each, for evidence. */
  timelineOf(name: string): string {
    return this.historyOf(name)
      .map((op) => describe(op))
      .join('\n')
  }

  #putsOf(name: string): OpRecord[] {
    return this.historyOf(name).filter((op) => op.kind === 'put')
  }

  /**
   * Whether the generation `put` made (if it made one) was certainly gone before `time`: an
   * operation that began after the put certainly took effect and ended before `time` saw the name
   * free or holding another generation.
   */
  #goneBefore(put: OpRecord, time: number): boolean {
    // A put that did not succeed may have taken effect at any time after it began.
    const tookEffectBy = put.outcome === 'ok' ? put.end! : NEVER
    return this.historyOf(put.name).some((other) => other !== put && other.end !== undefined && other.start > tookEffectBy && other.end < time && seesOtherThan(other, put))
  }

  /**
   * A put that succeeded and ended before `from`, with no rm that may have taken effect between its
   * start and `to`: its generation was certainly there throughout [from, to]. Undefined if none.
   */
  #certainlyPresent(name: string, from: number, to: number): OpRecord | undefined {
    const history = this.historyOf(name)
    const rms = history.filter((op) => op.kind === 'rm' && op.outcome !== 'absent')
    return history.find((op) => op.kind === 'put' && op.outcome === 'ok' && op.end! < from && !rms.some((rm) => rm.start < to && endOf(rm) > op.start))
  }

  #finding(op: OpRecord, kind: string, message: string): Finding {
    return {kind, message, names: [op.name], ids: [op.fileId ?? ''].filter(Boolean), details: this.timelineOf(op.name)}
  }
}

/** Whether `op`, at the instant it took effect, saw the name free or holding a generation other than `put`'s. */
function seesOtherThan(op: OpRecord, put: OpRecord): boolean {
  if (op.kind === 'put') return op.outcome === 'ok'
  if (op.kind === 'rm') return op.outcome === 'ok' || op.outcome === 'absent'
  return op.outcome === 'absent' || (op.outcome === 'ok' && op.sha256 !== put.sha256)
}

/** The end of an operation; one still running (or never answered) may take effect any time. */
function endOf(op: OpRecord): number {
  return op.end ?? NEVER
}

export function describe(op: OpRecord): string {
  const when = `${(op.start / 1000).toFixed(3)}–${op.end === undefined ? '…' : (op.end / 1000).toFixed(3)} s`
  const what =
    op.kind === 'put' ? `put ${op.label} (${formatBytes(op.size ?? 0)}, sha ${op.sha256?.slice(0, 12)})` : op.kind === 'get' && op.outcome === 'ok' ? `get → sha ${op.sha256?.slice(0, 12)}` : op.kind
  const result = op.outcome === undefined ? 'running' : op.outcome === 'failed' ? `FAILED: ${op.why ?? ''}` : op.outcome
  return `w${op.worker} #${op.seq} ${what} [${when}] ${result}${op.fileId ? ` fileId ${op.fileId}` : ''}`
}
