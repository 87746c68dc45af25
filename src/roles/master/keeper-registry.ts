import {DEFAULTS} from '../../lib/config.js'
import {DfsError} from '../../lib/errors.js'
import type {KeeperStats} from '../../lib/protocol.js'
import type {KeeperLoad} from './placement.js'
import type {KeeperDrain, KeeperRow, MasterTable} from './table.js'

interface KeeperState extends KeeperRow {
  /** Transfers the keeper reported in its last heartbeat. */
  reportedTransfers: number
  /** Uploads and copies the master sent its way since that heartbeat. */
  assignedSince: number
  persistedAt: number
  /** When the master declared it dead (memory only); null while alive. */
  diedAt: number | null
  /** Alive without heartbeats until then (memory only): the grace after the master itself was cut off. */
  graceUntil: number
}

// Heartbeats arrive every second per keeper; the table needs their figures only now and then.
const PERSIST_EVERY_MS = 5000

/**
 * Who is alive. Heartbeats update memory; the table is written when a keeper joins, dies or
 * comes back, and every few seconds otherwise. After a master restart every keeper that was alive
 * gets one heartbeat timeout of grace to check in before it is declared dead.
 *
 * A missed heartbeat does not tell a dead keeper from a master that has lost its own link, so a
 * death stays unconfirmed until the master hears from some keeper again (deathsUnconfirmed: no
 * copies are planned meanwhile, or copies ordered into a cut would land as surplus when it heals).
 * The next voice decides. A keeper that stayed alive: the master reaches the cluster, so the dead
 * are dead and their files are copied. One of the dead itself: the master was the one cut off
 * (every keeper goes silent at once, declared dead one by one as their timeouts run out, however
 * far apart load spreads them), so the others that died unheard come back with it, on grace: one
 * timeout to check in, plus the time a heartbeat sent into the cut may take to give up before its
 * keeper sends the next. Otherwise they would return one at a time, and the master would copy
 * files to the early ones, only to trim those copies as the rest came back.
 */
export class KeeperRegistry {
  readonly #keepers = new Map<string, KeeperState>()
  /** Keepers declared dead since the master last heard from any keeper. */
  #unconfirmedDeaths = new Set<string>()
  #timer: NodeJS.Timeout | undefined

  constructor(
    private readonly table: MasterTable,
    private readonly timeoutMs: number,
    private readonly onDead: (id: string) => void,
  ) {
    const now = Date.now()
    for (const row of table.keepers()) {
      this.#keepers.set(row.id, {...row, lastHeartbeat: row.alive ? now : row.lastHeartbeat, reportedTransfers: 0, assignedSince: 0, persistedAt: now, diedAt: null, graceUntil: 0})
    }
  }

  start(): void {
    const every = Math.max(50, Math.min(500, Math.floor(this.timeoutMs / 3)))
    this.#timer = setInterval(() => this.#sweep(), every)
  }

  stop(): void {
    clearInterval(this.#timer)
    for (const keeper of this.#keepers.values()) this.#persist(keeper)
  }

  #sweep(): void {
    const now = Date.now()
    for (const keeper of this.#keepers.values()) {
      if (keeper.alive && now > keeper.graceUntil && (keeper.lastHeartbeat === null || now - keeper.lastHeartbeat > this.timeoutMs)) {
        keeper.alive = false
        keeper.reportedTransfers = 0
        keeper.assignedSince = 0
        keeper.diedAt = now
        this.#unconfirmedDeaths.add(keeper.id)
        this.#persist(keeper)
        this.onDead(keeper.id)
      }
    }
  }

  /** Whether keepers were declared dead since the master last heard from any: repairs wait for the next voice. */
  deathsUnconfirmed(): boolean {
    return this.#unconfirmedDeaths.size > 0
  }

  /** The master hears from `voice`: the deaths since the last voice are confirmed, or undone if it is one of them. */
  #heard(voice: string): void {
    if (this.#unconfirmedDeaths.size === 0) return
    if (this.#unconfirmedDeaths.has(voice)) {
      const now = Date.now()
      for (const id of this.#unconfirmedDeaths) {
        const keeper = this.#keepers.get(id)
        if (!keeper || keeper.alive || id === voice) continue
        Object.assign(keeper, {alive: true, diedAt: null, graceUntil: now + this.timeoutMs + DEFAULTS.heartbeatRequestTimeoutMs})
        this.#persist(keeper)
      }
    }

    this.#unconfirmedDeaths.clear()
  }

  /** A keeper registers: known or new, it is alive from now on, in the zone it names; a drain begun goes on. */
  upsert(id: string, stats: KeeperStats, zone: string): void {
    const now = Date.now()
    const existing = this.#keepers.get(id)
    const keeper: KeeperState = {
      id,
      url: stats.url,
      alive: true,
      lastHeartbeat: now,
      storedBytes: stats.storedBytes,
      freeBytes: stats.freeBytes,
      registeredAt: existing?.registeredAt ?? now,
      zone,
      drain: existing?.drain ?? null,
      reportedTransfers: stats.activeTransfers,
      assignedSince: 0,
      persistedAt: now,
      diedAt: null,
      graceUntil: 0,
    }
    this.#heard(id)
    this.#keepers.set(id, keeper)
    this.table.saveKeeper(keeper)
  }

  /** Records a heartbeat; returns true when the keeper had been declared dead and is back. */
  heartbeat(id: string, stats: KeeperStats): boolean {
    const keeper = this.#keepers.get(id)
    if (!keeper) throw new DfsError('DFS_ERR_UNKNOWN_KEEPER', `keeper ${id} is not registered; register first`)
    const now = Date.now()
    this.#heard(id)
    const cameBack = !keeper.alive
    Object.assign(keeper, {
      url: stats.url,
      alive: true,
      lastHeartbeat: now,
      storedBytes: stats.storedBytes,
      freeBytes: stats.freeBytes,
      reportedTransfers: stats.activeTransfers,
      assignedSince: 0,
      diedAt: null,
      graceUntil: 0,
    })
    if (cameBack || now - keeper.persistedAt >= PERSIST_EVERY_MS) this.#persist(keeper)
    return cameBack
  }

  /** Marks a keeper draining or drained, durably. */
  setDrain(id: string, drain: KeeperDrain): void {
    const keeper = this.#keepers.get(id)
    if (!keeper || keeper.drain === drain) return
    keeper.drain = drain
    this.#persist(keeper)
  }

  /** Drops a keeper from memory (the caller removes it from the table). */
  forget(id: string): void {
    this.#keepers.delete(id)
    this.#unconfirmedDeaths.delete(id)
  }

  #persist(keeper: KeeperState): void {
    keeper.persistedAt = Date.now()
    this.table.saveKeeper(keeper)
  }

  /** The master sent this keeper work (an upload, a copy): it counts as load until the next heartbeat. */
  assigned(id: string): void {
    const keeper = this.#keepers.get(id)
    if (keeper) keeper.assignedSince++
  }

  /** Whether the keeper is alive and sent a heartbeat within the last `ms`. */
  heardWithin(id: string, ms: number): boolean {
    const keeper = this.#keepers.get(id)
    return keeper !== undefined && keeper.alive && keeper.lastHeartbeat !== null && Date.now() - keeper.lastHeartbeat <= ms
  }

  /** How many of these keepers are alive: the alive replicas of a file, given its holders. */
  countAlive(ids: Iterable<string>): number {
    let count = 0
    for (const id of ids) if (this.#keepers.get(id)?.alive) count++
    return count
  }

  get(id: string): KeeperRow | undefined {
    return this.#keepers.get(id)
  }

  list(): KeeperRow[] {
    return [...this.#keepers.values()].sort((a, b) => a.registeredAt - b.registeredAt || a.id.localeCompare(b.id))
  }

  loads(): KeeperLoad[] {
    return [...this.#keepers.values()].map((keeper) => ({
      id: keeper.id,
      alive: keeper.alive,
      load: keeper.reportedTransfers + keeper.assignedSince,
      storedBytes: keeper.storedBytes,
      freeBytes: keeper.freeBytes,
      zone: keeper.zone,
      draining: keeper.drain !== null,
    }))
  }
}
