// The faults. Each kind of fault is one entry of FAULT_KINDS: how it is planned (drawn from the seed
// before the run, on its own stream, so adding a kind changes no other kind's plan), how it is
// carried out, and how it is undone (if the test undoes it; a corrupt replica is for the cluster
// to find and repair). The plan never depends on what happens during the run; only whether a step
// can be carried out at its moment does (never fewer than `minAlive` keepers; a replica fit to
// damage), and the timeline says so when one cannot.

import {setTimeout as sleep} from 'node:timers/promises'

import {type ServerProcess, type TestCluster} from '../helpers/cluster.js'
import type {FileInfo} from '../../src/lib/protocol.js'
import {blobIsGoodOrGone, blobsIn, fillDisk, flipBytes, freeDisk} from './disk-faults.js'
import {formatBytes, type Journal} from './journal.js'
import type {Rng} from './prng.js'

export type Fault =
  | {kind: 'kill-keeper'; at: number; slot: number; signal: 'SIGKILL' | 'SIGTERM'; until?: number}
  | {kind: 'kill-master'; at: number; until: number}
  | {kind: 'corrupt-replica'; at: number; slot: number; pick: number; flips: number[]}
  | {kind: 'fill-disk'; at: number; slot: number; leaveBytes: number; until?: number}

export type FaultKindName = Fault['kind']

export interface PlanContext {
  durationMs: number
  keepers: number
  /** Never fewer keepers running than this. */
  minAlive: number
  /** Pause between two keeper kills, in ms. */
  killGapMs: [number, number]
  /** How long a killed keeper stays down, in ms. */
  downMs: [number, number]
  masterKills: number
  sigtermChance: number
  corruptions: number
  /** The keeper on a small disk of its own, which fill-disk faults fill; none: no such faults. */
  smallDiskSlot?: number
  diskFills: number
}

interface FaultKind<F extends Fault> {
  plan(rng: Rng, context: PlanContext): F[]
  describe(fault: F): string
  /** What the fault acts on: the steps of faults on one target run in order, others in parallel. */
  target(fault: F): string
  inject(fault: F, monkey: ChaosMonkey): Promise<void>
  /** Undoes the fault at `until`; the final phase undoes what is still in place. */
  heal?(fault: F, monkey: ChaosMonkey): Promise<void>
}

type FaultKinds = {[K in FaultKindName]: FaultKind<Extract<Fault, {kind: K}>>}

/** `count` instants spread over the run, one in each equal share of it. */
function spread(rng: Rng, count: number, durationMs: number): number[] {
  const share = durationMs / Math.max(1, count)
  return Array.from({length: count}, (_, index) => index * share + rng.real(0.15, 0.85) * share)
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)}s`

export const FAULT_KINDS: FaultKinds = {
  'kill-keeper': {
    plan(rng, context) {
      const faults: Array<Extract<Fault, {kind: 'kill-keeper'}>> = []
      // Per slot, the time it is back up (0: up).
      const downUntil = new Array<number>(context.keepers).fill(0)
      for (let at = rng.real(500, 1500); at < context.durationMs - 500; at += rng.real(...context.killGapMs)) {
        const up = downUntil.map((until, slot) => ({until, slot})).filter(({until}) => until <= at)
        if (up.length - 1 < context.minAlive) continue
        const {slot} = rng.pick(up)
        const signal = rng.chance(context.sigtermChance) ? 'SIGTERM' : 'SIGKILL'
        const back = at + rng.real(...context.downMs)
        // A keeper due back after the end is restarted by the final phase.
        faults.push({kind: 'kill-keeper', at, slot, signal, ...(back < context.durationMs ? {until: back} : {})})
        downUntil[slot] = back
      }

      return faults
    },
    describe: (fault) => `${fault.signal} keeper slot ${fault.slot}, ${fault.until === undefined ? 'back at the end' : `back at ${seconds(fault.until)}`}`,
    target: (fault) => `keeper ${fault.slot}`,
    inject: (fault, monkey) => monkey.killKeeper(fault.slot, fault.signal),
    heal: (fault, monkey) => monkey.restartKeeper(fault.slot),
  },

  'kill-master': {
    plan: (rng, context) => spread(rng, context.masterKills, context.durationMs).map((at) => ({kind: 'kill-master', at, until: at + rng.real(300, 2000)})),
    describe: (fault) => `SIGKILL master, back at ${seconds(fault.until)}`,
    target: () => 'master',
    inject: (_fault, monkey) => monkey.killMaster(),
    heal: (_fault, monkey) => monkey.restartMaster(),
  },

  'corrupt-replica': {
    plan: (rng, context) =>
      spread(rng, context.corruptions, context.durationMs).map((at) => ({
        kind: 'corrupt-replica',
        at,
        slot: rng.int(0, context.keepers - 1),
        pick: rng.next(),
        flips: Array.from({length: rng.int(1, 4)}, () => rng.next()),
      })),
    describe: (fault) => `flip ${fault.flips.length} byte(s) of a replica on keeper slot ${fault.slot} (or the next with one fit to damage)`,
    target: () => 'replicas',
    inject: (fault, monkey) => monkey.corruptReplica(fault),
  },

  'fill-disk': {
    plan(rng, context) {
      if (context.smallDiskSlot === undefined) return []
      const slot = context.smallDiskSlot
      return spread(rng, context.diskFills, context.durationMs).map((at) => {
        const until = at + rng.real(2000, 6000)
        return {kind: 'fill-disk', at, slot, leaveBytes: rng.int(0, 256 * 1024), ...(until < context.durationMs ? {until} : {})}
      })
    },
    describe: (fault) => `fill the disk of keeper slot ${fault.slot} (leave ${formatBytes(fault.leaveBytes)}), ${fault.until === undefined ? 'freed at the end' : `freed at ${seconds(fault.until)}`}`,
    target: (fault) => `disk ${fault.slot}`,
    inject: (fault, monkey) => monkey.fillDisk(fault.slot, fault.leaveBytes),
    heal: (fault, monkey) => monkey.freeDisk(fault.slot),
  },
}

function kindOf<F extends Fault>(fault: F): FaultKind<F> {
  return FAULT_KINDS[fault.kind] as unknown as FaultKind<F>
}

/** Draws the fault plan for a run: every kind from its own stream of `rng`, merged in time order. */
export function planFaults(rng: Rng, context: PlanContext): Fault[] {
  const faults: Fault[] = []
  for (const [name, kind] of Object.entries(FAULT_KINDS) as unknown as Array<[FaultKindName, FaultKind<Fault>]>) faults.push(...kind.plan(rng.fork(`faults:${name}`), context))
  return faults.sort((a, b) => a.at - b.at)
}

export function describeFault(fault: Fault): string {
  return `${seconds(fault.at)} ${kindOf(fault).describe(fault)}`
}

/** A replica the run damaged: the cluster must drop it (or replace it with a good copy). */
export interface Corruption {
  slot: number
  keeperId: string
  fileId: string
  name: string
  path: string
  size: number
  sha256: string
  offsets: number[]
  /** ms after the workload began. */
  at: number
}

export interface MonkeyOptions {
  minAlive: number
  /** Replicas per file: a replica is damaged only while its file has this many recorded. */
  replicas: number
  /** Filler file per slot whose disk can be filled (on the same small disk as its data dir). */
  fillers: Map<number, string>
}

/** Carries out a fault plan against a cluster's real processes and disks, and undoes it at the end. */
export class ChaosMonkey {
  /** Every server process ever started, for the logs (a restart replaces the cluster's entry). */
  readonly processes: Array<{label: string; process: ServerProcess}> = []
  readonly corruptions: Corruption[] = []
  readonly #down = new Set<number>()
  readonly #restarting = new Map<number, Promise<void>>()
  readonly #exiting = new Map<number, Promise<void>>()
  readonly #filled = new Set<number>()
  #masterDown = false
  #incarnations = new Map<string, number>()
  #started = 0
  #stop: () => boolean = () => false

  constructor(
    private readonly cluster: TestCluster,
    private readonly journal: Journal,
    private readonly options: MonkeyOptions,
  ) {
    this.#remember('master', cluster.master)
    cluster.keepers.forEach((keeper) => this.#remember(`keeper ${keeper.id}`, keeper))
  }

  #remember(what: string, process: ServerProcess): void {
    const incarnation = (this.#incarnations.get(what) ?? 0) + 1
    this.#incarnations.set(what, incarnation)
    this.processes.push({label: `${what} #${incarnation}`, process})
  }

  get aliveKeepers(): number {
    return this.cluster.keepers.length - this.#down.size
  }

  /**
   * Carries out `plan` on the wall clock from `start` until it ends or `stop()` says so. Each step
   * runs in the background, after the earlier steps on the same target (a keeper's restart after
   * its kill), so that a slow restart does not hold up the rest of the plan.
   */
  async run(plan: Fault[], start: number, stop: () => boolean): Promise<void> {
    this.#started = start
    this.#stop = stop
    const steps = plan.flatMap((fault) => [{at: fault.at, fault, heal: false}, ...(fault.kind !== 'corrupt-replica' && fault.until !== undefined ? [{at: fault.until, fault, heal: true}] : [])])
    steps.sort((a, b) => a.at - b.at)
    const chains = new Map<string, Promise<void>>()
    for (const step of steps) {
      while (!stop() && Date.now() - start < step.at) await sleep(Math.min(100, step.at - (Date.now() - start)))
      if (stop()) break
      const kind = kindOf(step.fault)
      const target = kind.target(step.fault)
      // A step held up behind a slow one on its target may come due after the end: then only undo.
      const act = step.heal ? () => kind.heal!(step.fault, this) : () => (stop() ? undefined : kind.inject(step.fault, this))
      chains.set(target, (chains.get(target) ?? Promise.resolve()).then(act))
    }

    await Promise.all(chains.values())
  }

  /** Kills a keeper, unless that would leave fewer than `minAlive` running once restarts under way are done. */
  async killKeeper(slot: number, signal: 'SIGKILL' | 'SIGTERM'): Promise<void> {
    if (this.#down.has(slot)) return
    while (this.aliveKeepers - 1 < this.options.minAlive && this.#restarting.size > 0) await Promise.race(this.#restarting.values())
    if (this.aliveKeepers - 1 < this.options.minAlive) {
      this.journal.event('chaos', `skipped ${signal} of slot ${slot}: only ${this.aliveKeepers} keepers running`)
      return
    }

    const keeper = this.cluster.keepers[slot]!
    this.#down.add(slot)
    this.journal.event('chaos', `${signal} keeper ${keeper.id} (slot ${slot}, pid ${keeper.child.pid}); ${this.aliveKeepers} keepers left running`)
    if (signal === 'SIGKILL') this.journal.chaos.keeperKills++
    else this.journal.chaos.keeperTerms++
    // A SIGTERM'd keeper may take seconds to stop: its restart waits for the exit, not the plan.
    const exited = keeper.stop(signal).then((code) => {
      this.journal.event('chaos', `keeper ${keeper.id} exited (${code === null ? signal : `code ${code}`})`)
    })
    this.#exiting.set(slot, exited)
    if (signal === 'SIGKILL') await exited
  }

  async restartKeeper(slot: number): Promise<void> {
    if (!this.#down.has(slot)) return
    const restart = this.#restartKeeper(slot).finally(() => this.#restarting.delete(slot))
    this.#restarting.set(slot, restart)
    await restart
  }

  async #restartKeeper(slot: number): Promise<void> {
    const old = this.cluster.keepers[slot]!
    const dir = this.cluster.keeperDirs[slot]!
    await this.#exiting.get(slot)
    for (let attempt = 1; ; attempt++) {
      try {
        const keeper = await this.cluster.addKeeper(dir)
        this.#remember(`keeper ${keeper.id}`, keeper)
        this.#down.delete(slot)
        this.journal.chaos.keeperRestarts++
        this.journal.event('chaos', `restarted keeper ${keeper.id} (slot ${slot}, pid ${keeper.child.pid}) at ${keeper.url}`)
        if (keeper.id !== old.id) {
          this.journal.violation({kind: 'keeper-identity', message: `keeper in slot ${slot} came back as ${keeper.id}, it was ${old.id}`, ids: [old.id, keeper.id]})
        }

        return
      } catch (error) {
        this.journal.chaos.restartFailures++
        this.journal.warning({kind: 'restart-failed', message: `restart of keeper ${old.id} failed (attempt ${attempt}): ${String(error).slice(0, 2000)}`, ids: [old.id]})
        if (attempt >= 3) {
          this.journal.violation({kind: 'restart-failed', message: `keeper ${old.id} did not come back after ${attempt} attempts`, ids: [old.id]})
          return
        }

        await sleep(500)
      }
    }
  }

  async killMaster(): Promise<void> {
    this.#masterDown = true
    this.journal.event('chaos', `SIGKILL master (pid ${this.cluster.master.child.pid})`)
    await this.cluster.master.stop('SIGKILL')
    this.journal.chaos.masterKills++
  }

  async restartMaster(): Promise<void> {
    if (!this.#masterDown) return
    for (let attempt = 1; ; attempt++) {
      try {
        const master = await this.cluster.startMaster()
        this.#remember('master', master)
        this.#masterDown = false
        this.journal.event('chaos', `restarted master (pid ${master.child.pid}) at ${master.url}`)
        return
      } catch (error) {
        this.journal.warning({kind: 'restart-failed', message: `master restart failed (attempt ${attempt}): ${String(error).slice(0, 2000)}`})
        if (attempt >= 5) {
          this.journal.violation({kind: 'restart-failed', message: `the master did not come back after ${attempt} attempts`})
          throw error
        }

        await sleep(500)
      }
    }
  }

  /**
   * Flips bytes of one replica on the keeper's disk (running or not). Only a replica whose file has
   * every wanted replica recorded, none of them damaged by an earlier fault and not yet repaired,
   * is fit: the file keeps good copies to be repaired from, so a loss would be the cluster's doing.
   */
  async corruptReplica(fault: Extract<Fault, {kind: 'corrupt-replica'}>): Promise<void> {
    // The planned keeper first, then the next ones; while no replica anywhere is fit (early in the
    // run, or while keepers are down), look again a little later.
    const keepers = this.cluster.keepers.length
    while (!this.#stop()) {
      for (let turn = 0; turn < keepers; turn++) {
        if (await this.#corruptOn((fault.slot + turn) % keepers, fault)) return
      }

      await sleep(1000)
    }

    this.journal.event('chaos', `no replica on any keeper was fit to damage before the end; corruption skipped`)
  }

  async #corruptOn(slot: number, fault: Extract<Fault, {kind: 'corrupt-replica'}>): Promise<boolean> {
    const keeperId = this.cluster.keepers[slot]!.id
    const blobs = (await blobsIn(this.cluster.keeperDirs[slot]!)).filter((blob) => blob.described && !blob.undecided && (blob.size ?? 0) > 0)
    const first = Math.floor(fault.pick * blobs.length)
    // A few candidates at most: each is a question to the master.
    for (let index = 0; index < Math.min(blobs.length, 4); index++) {
      const blob = blobs[(first + index) % blobs.length]!
      if (!(await this.#fitToDamage(blob.fileId, blob.name!, keeperId))) continue
      let offsets: number[]
      try {
        offsets = await flipBytes(blob.path, blob.size!, fault.flips)
      } catch (error) {
        // Deleted (trimmed, removed) since it was listed.
        if ((error as {code?: string}).code === 'ENOENT') continue
        throw error
      }

      const corruption: Corruption = {slot, keeperId, fileId: blob.fileId, name: blob.name!, path: blob.path, size: blob.size!, sha256: blob.sha256!, offsets, at: Date.now() - this.#started}
      this.corruptions.push(corruption)
      this.journal.chaos.corruptions++
      this.journal.event('chaos', `flipped ${offsets.length} byte(s) at ${offsets.join(', ')} of the replica of "${blob.name}" (${blob.fileId}, ${formatBytes(blob.size!)}) on keeper ${keeperId} (slot ${slot})`)
      return true
    }

    return false
  }

  async #fitToDamage(fileId: string, name: string, keeperId: string): Promise<boolean> {
    for (const earlier of this.corruptions) if (earlier.fileId === fileId && !(await blobIsGoodOrGone(earlier.path, earlier.sha256))) return false
    try {
      const {status, body} = await this.cluster.masterJson<FileInfo>(`/files/${encodeURIComponent(name)}`, {signal: AbortSignal.timeout(10_000)})
      return status === 200 && body.fileId === fileId && body.replicas.length >= this.options.replicas && body.replicas.some((replica) => replica.keeper === keeperId)
    } catch {
      // The master is down: nothing is known of the file's other copies.
      return false
    }
  }

  async fillDisk(slot: number, leaveBytes: number): Promise<void> {
    const filler = this.options.fillers.get(slot)
    if (!filler) return
    const written = await fillDisk(filler, leaveBytes)
    this.#filled.add(slot)
    this.journal.chaos.diskFills++
    this.journal.event('chaos', `filled the disk of keeper ${this.cluster.keepers[slot]!.id} (slot ${slot}) with ${formatBytes(written)}, leaving about ${formatBytes(leaveBytes)}`)
  }

  async freeDisk(slot: number): Promise<void> {
    if (!this.#filled.delete(slot)) return
    await freeDisk(this.options.fillers.get(slot)!)
    this.journal.event('chaos', `freed the disk of keeper ${this.cluster.keepers[slot]!.id} (slot ${slot})`)
  }

  /** Undoes every fault still in place: the master and every keeper back, every disk freed. */
  async restartAll(): Promise<void> {
    await Promise.all(this.#restarting.values())
    await this.restartMaster()
    for (const slot of [...this.#filled]) await this.freeDisk(slot)
    for (const slot of [...this.#down].sort((a, b) => a - b)) await this.restartKeeper(slot)
  }
}
