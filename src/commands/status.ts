import {DfsCommand, caFlag, formatAge, formatBytes, formatTable, jsonFlag, masterFlag, nameCell, tokenFlag} from '../lib/base-command.js'

const LONG_DEAD_MS = 60 * 60 * 1000

function sum(values: number[]): number {
  return values.reduce((total, value) => total + value, 0)
}

export default class StatusCommand extends DfsCommand {
  static override summary = 'Show the keepers: zone, alive or not, draining, last heartbeat, transfers in flight, files, bytes stored and free, and the totals of the alive ones.'
  static override examples = ['<%= config.bin %> status', '<%= config.bin %> status --json']
  static override flags = {master: masterFlag, token: tokenFlag, ca: caFlag, json: jsonFlag}

  async run(): Promise<void> {
    const {flags} = await this.parse(StatusCommand)
    const {clusterStatus} = await import('../roles/client/admin.js')
    const keepers = await clusterStatus(await this.master(flags))
    if (flags.json) return this.printJson({keepers})
    if (keepers.length === 0) return this.log('no keepers registered')
    const rows: Array<Record<string, string | number>> = keepers.map((keeper) => ({
      id: keeper.id,
      url: keeper.url,
      zone: nameCell(keeper.zone),
      alive: keeper.alive ? 'yes' : 'no',
      drain: keeper.drain ?? '',
      'last heartbeat': formatAge(keeper.lastHeartbeat),
      transfers: keeper.activeTransfers,
      files: keeper.files,
      stored: formatBytes(keeper.storedBytes),
      free: formatBytes(keeper.freeBytes),
    }))
    const alive = keepers.filter((keeper) => keeper.alive)
    rows.push({
      id: 'total',
      alive: `${alive.length} of ${keepers.length}`,
      transfers: sum(alive.map((keeper) => keeper.activeTransfers)),
      files: sum(alive.map((keeper) => keeper.files)),
      stored: formatBytes(sum(alive.map((keeper) => keeper.storedBytes))),
      free: formatBytes(sum(alive.map((keeper) => keeper.freeBytes))),
    })
    this.log(formatTable(rows, ['id', 'url', 'zone', 'alive', 'drain', 'last heartbeat', 'transfers', 'files', 'stored', 'free']))
    // A keeper that is gone for good stays listed (its replicas still count as lost) until it is forgotten.
    const gone = keepers.filter((keeper) => !keeper.alive && keeper.lastHeartbeat !== null && Date.now() - Date.parse(keeper.lastHeartbeat) > LONG_DEAD_MS)
    if (gone.length > 0) this.log(`\n${gone.length} keeper${gone.length === 1 ? ' is' : 's are'} dead for over an hour; if gone for good: ${gone.map((keeper) => `${this.config.bin} keeper forget ${keeper.id}`).join('; ')}`)
  }
}
