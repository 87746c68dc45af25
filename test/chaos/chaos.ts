// The faults: a plan drawn from the seed before the run (which keeper dies when, by which signal,
// for how long; when the master is killed), carried out against the cluster's real processes.
// The plan depends on the seed only, never on timing, so `--seed N` replays the same faults.

import {setTimeout as sleep} from 'node:timers/promises'

import type {ServerProcess, TestCluster} from '../helpers/cluster.js'
import type {Journal} from './journal.js'
import type {Rng} from './prng.js'

export type FaultEvent =
  | {at: number; kind: 'kill-keeper'; slot: number; signal: 'SIGKILL' | 'SIGTERM'}
  | {at: number; kind: 'restart-keeper'; slot: number}
  | {at: number; kind: 'kill-master'; downMs: number}

export interface PlanOptions {
  durationMs: number
  keepers: number
  /** Never fewer keepers running than this. */
  minAlive: number
  /** Pause between two kills, in ms. */
  killGapMs: [number, number]
  /** How long a killed keeper stays down, in ms. */
  downMs: [number, number]
  masterKills: number
  sigtermChance: number
}

/** Draws the fault plan for a run from `rng`. */
export function planFaults(rng: Rng, options: PlanOptions): FaultEvent[] {
  const events: FaultEvent[] = []
  // Per slot, the time it is back up (0: up).
  const downUntil = new Array<number>(options.keepers).fill(0)
  for (let at = rng.real(500, 1500); at < options.durationMs - 500; at += rng.real(...options.killGapMs)) {
    const up = downUntil.map((until, slot) => ({until, slot})).filter(({until}) => until <= at)
    if (up.length - 1 < options.minAlive) continue
    const {slot} = rng.pick(up)
    const signal = rng.chance(options.sigtermChance) ? 'SIGTERM' : 'SIGKILL'
    const back = at + rng.real(...options.downMs)
    events.push({at, kind: 'kill-keeper', slot, signal})
    // A keeper due back after the end is restarted by the final phase.
    if (back < options.durationMs) events.push({at: back, kind: 'restart-keeper', slot})
    downUntil[slot] = back
  }

  for (let index = 0; index < options.masterKills; index++) {
    // Spread over the middle of the run, one per equal share of it.
    const share = options.durationMs / options.masterKills
    events.push({at: index * share + rng.real(0.3, 0.7) * share, kind: 'kill-master', downMs: rng.real(300, 2000)})
  }

  return events.sort((a, b) => a.at - b.at)
}

export function describeFault(event: FaultEvent): string {
  const at = `${(event.at / 1000).toFixed(2)}s`
  if (event.kind === 'kill-keeper') return `${at} ${event.signal} keeper slot ${event.slot}`
  if (event.kind === 'restart-keeper') return `${at} restart keeper slot ${event.slot}`
  return `${at} SIGKILL master, down ${Math.round(event.downMs)} ms`
}

/** Runs a fault plan against a cluster, and brings everything back at the end. */
export class ChaosMonkey {
  /** Every server process ever started, for the logs (a restart replaces the cluster's entry). */
  readonly processes: Array<{label: string; process: ServerProcess}> = []
  readonly #down = new Set<number>()
  readonly #restarting = new Map<number, Promise<void>>()
  readonly #exiting = new Map<number, Promise<void>>()
  #masterDown = false
  #incarnations = new Map<string, number>()

  constructor(
    private readonly cluster: TestCluster,
    private readonly journal: Journal,
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
   * Carries out `plan` on the wall clock from `start`, until the plan ends or `stop()` says so.
   * Restarts run in the background (a keeper takes a second or more to start, more on a busy
   * machine), so that the plan does not fall behind; a kill waits for a restart still under way
   * when it would otherwise leave fewer than `minAlive` keepers running.
   */
  async run(plan: FaultEvent[], start: number, stop: () => boolean, minAlive: number): Promise<void> {
    for (const event of plan) {
      while (!stop() && Date.now() - start < event.at) await sleep(Math.min(100, event.at - (Date.now() - start)))
      if (stop()) break
      if (event.kind === 'kill-keeper') {
        await this.#restarting.get(event.slot)
        while (this.aliveKeepers - 1 < minAlive && this.#restarting.size > 0) await Promise.race(this.#restarting.values())
        if (this.aliveKeepers - 1 < minAlive) this.journal.event('chaos', `skipped ${event.signal} of slot ${event.slot}: only ${this.aliveKeepers} keepers running`)
        else await this.killKeeper(event.slot, event.signal)
      } else if (event.kind === 'restart-keeper') {
        if (this.#restarting.has(event.slot)) continue
        const restart = this.restartKeeper(event.slot).finally(() => this.#restarting.delete(event.slot))
        this.#restarting.set(event.slot, restart)
      } else {
        await this.killMaster()
        const until = Date.now() + event.downMs
        while (!stop() && Date.now() < until) await sleep(50)
        await this.restartMaster()
      }
    }

    await Promise.all(this.#restarting.values())
  }

  /** Kills a keeper; a SIGTERM'd keeper may take seconds to stop, so its exit is awaited by its restart, not here. */
  async killKeeper(slot: number, signal: 'SIGKILL' | 'SIGTERM'): Promise<void> {
    if (this.#down.has(slot)) return
    const keeper = this.cluster.keepers[slot]!
    this.#down.add(slot)
    this.journal.event('chaos', `${signal} keeper ${keeper.id} (slot ${slot}, pid ${keeper.child.pid}); ${this.aliveKeepers} keepers left running`)
    if (signal === 'SIGKILL') this.journal.chaos.keeperKills++
    else this.journal.chaos.keeperTerms++
    const exited = keeper.stop(signal).then((code) => {
      this.journal.event('chaos', `keeper ${keeper.id} exited (${code === null ? signal : `code ${code}`})`)
    })
    this.#exiting.set(slot, exited)
    if (signal === 'SIGKILL') await exited
  }

  async restartKeeper(slot: number): Promise<void> {
    if (!this.#down.has(slot)) return
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

  /** Brings back the master and every keeper that is down. */
  async restartAll(): Promise<void> {
    await Promise.all(this.#restarting.values())
    await this.restartMaster()
    for (const slot of [...this.#down].sort((a, b) => a - b)) await this.restartKeeper(slot)
  }
}
