import {DfsCommand, caFlag, formatBytes, formatTable, jsonFlag, masterFlag, tokenFlag} from '../lib/base-command.js'

export default class DfCommand extends DfsCommand {
  static override summary = 'Show the space of each keeper and of the cluster: capacity, used, free.'
  static override description = `Used is the bytes of the replicas a keeper holds; free is the free space of its disk, as it last reported; capacity is the two together. The total counts alive keepers only. Keepers that share a disk each count its free space.`

  static override examples = ['<%= config.bin %> df', '<%= config.bin %> df --json']
  static override flags = {master: masterFlag, token: tokenFlag, ca: caFlag, json: jsonFlag}

  async run(): Promise<void> {
    const {flags} = await this.parse(DfCommand)
    const {clusterSpace} = await import('../roles/client/admin.js')
    const space = await clusterSpace(await this.master(flags))
    if (flags.json) return this.printJson(space)
    const row = (id: string, zone: string, alive: string, bytes: {capacity: number; used: number; free: number}) => ({
      keeper: id,
      zone,
      alive,
      capacity: formatBytes(bytes.capacity),
      used: formatBytes(bytes.used),
      free: formatBytes(bytes.free),
      'use%': bytes.capacity > 0 ? `${Math.round((100 * bytes.used) / bytes.capacity)}%` : '-',
    })
    const rows = space.keepers.map((keeper) => row(keeper.id, keeper.zone, keeper.alive ? 'yes' : 'no', keeper))
    rows.push(row('total', '', `${space.keepers.filter((keeper) => keeper.alive).length} alive`, space.total))
    this.log(formatTable(rows, ['keeper', 'zone', 'alive', 'capacity', 'used', 'free', 'use%']))
  }
}
