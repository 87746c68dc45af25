import {Flags} from '@oclif/core'

import {DfsCommand, caFlag, formatBytes, formatTable, jsonFlag, masterFlag, tokenFlag} from '../lib/base-command.js'

export default class FsckCommand extends DfsCommand {
  static override summary = "Check every file's health: alive replicas against the target, corrupt and missing files."
  static override description = `Like hdfs fsck: one line per file that is not healthy (all files with --verbose) and a summary. A file is SINGLE-ZONE when all its counted replicas sit in one zone while keepers of more zones are alive (losing that zone would lose it); replicas on draining keepers are shown apart and do not count. Exits 0 when every file has at least one alive replica (under-replicated and single-zone files included: the replicator is on them), and 1 when any file is missing. Replicas that a rebuild of the table (dfs master --recover) found and did not use are listed with the reason.`

  static override examples = ['<%= config.bin %> fsck', '<%= config.bin %> fsck --json']
  static override flags = {
    master: masterFlag,
    token: tokenFlag,
    ca: caFlag,
    json: jsonFlag,
    verbose: Flags.boolean({char: 'v', description: 'list healthy files too', default: false}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(FsckCommand)
    const {fsck} = await import('../roles/client/admin.js')
    const report = await fsck(await this.master(flags))
    if (flags.json) this.printJson(report)
    else {
      const shown = report.files.filter((file) => flags.verbose || file.health !== 'healthy')
      if (shown.length > 0) {
        const rows = shown.map((file) => ({
          name: file.name,
          size: formatBytes(file.size),
          replicas: `${file.alive}/${file.target}`,
          zones: file.zones.join(','),
          draining: file.draining,
          dead: file.dead,
          corrupt: file.corrupt,
          health: file.health.toUpperCase(),
        }))
        this.log(formatTable(rows, ['name', 'size', 'replicas', 'zones', 'draining', 'dead', 'corrupt', 'health']) + '\n')
      }

      if (report.recovering) this.log('The master is rebuilding its table from the keepers\' inventories (--recover): no file is known yet\n')
      const setAside = report.setAside ?? []
      if (setAside.length > 0) {
        const rows = setAside.map((replica) => ({name: replica.name, 'file id': replica.fileId, keeper: replica.keeperId, size: formatBytes(replica.size), reason: replica.reason}))
        this.log(`Set aside by the recovery of the table (kept on their keepers, not served):\n${formatTable(rows, ['name', 'file id', 'keeper', 'size', 'reason'])}\n`)
      }

      const {summary} = report
      this.log(`files: ${summary.files}  healthy: ${summary.healthy}  under-replicated: ${summary.underReplicated}  single-zone: ${summary.singleZone}  over-replicated: ${summary.overReplicated}  missing: ${summary.missing}  corrupt replicas: ${summary.corrupt}`)
      this.log(`keepers: ${summary.aliveKeepers} alive of ${summary.keepers}`)
      this.log(`The filesystem is ${report.status.toUpperCase()}`)
    }

    if (report.status === 'missing') this.exit(1)
  }
}
