import {DfsCommand, caFlag, formatBytes, formatTable, jsonFlag, masterFlag, tokenFlag} from '../lib/base-command.js'

export default class StatusCommand extends DfsCommand {
  static override summary = 'Show the keepers: zone, alive or not, draining, last heartbeat, files, bytes stored and free.'
  static override examples = ['<%= config.bin %> status', '<%= config.bin %> status --json']
  static override flags = {master: masterFlag, token: tokenFlag, ca: caFlag, json: jsonFlag}

  async run(): Promise<void> {
    const {flags} = await this.parse(StatusCommand)
    const {clusterStatus} = await import('../roles/client/admin.js')
    const keepers = await clusterStatus(await this.master(flags))
    if (flags.json) return this.printJson({keepers})
    if (keepers.length === 0) return this.log('no keepers registered')
    const rows = keepers.map((keeper) => ({
      id: keeper.id,
      url: keeper.url,
      zone: keeper.zone,
      alive: keeper.alive ? 'yes' : 'no',
      drain: keeper.drain ?? '',
      'last heartbeat': keeper.lastHeartbeat ?? 'never',
      files: keeper.files,
      stored: formatBytes(keeper.storedBytes),
      free: formatBytes(keeper.freeBytes),
    }))
    this.log(formatTable(rows, ['id', 'url', 'zone', 'alive', 'drain', 'last heartbeat', 'files', 'stored', 'free']))
  }
}
