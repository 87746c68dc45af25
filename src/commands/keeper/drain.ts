import {Args} from '@oclif/core'

import {DfsCommand, caFlag, jsonFlag, masterFlag, tokenFlag} from '../../lib/base-command.js'

export default class KeeperDrainCommand extends DfsCommand {
  static override summary = 'Drain a keeper: copy its files to the others, then have it delete them.'
  static override description = `Like an HDFS decommission. The master marks the keeper draining (in its table, so a restart keeps it): it takes no new uploads and receives no copies, and its replicas stop counting toward their files' targets, so the replicator copies them to other keepers (they stay readable meanwhile). Once every file it holds has its full count elsewhere, the keeper is drained: it is told to delete its copies. dfs status shows the drain; dfs keeper forget then removes the keeper. The command returns at once. Draining takes an admin token.`

  static override examples = ['<%= config.bin %> keeper drain kX3b9Qa', '<%= config.bin %> status   # DRAIN: draining, then drained']
  static override args = {id: Args.string({description: 'id of the keeper, as dfs status shows it', required: true})}
  static override flags = {master: masterFlag, token: tokenFlag, ca: caFlag, json: jsonFlag}

  async run(): Promise<void> {
    const {args, flags} = await this.parse(KeeperDrainCommand)
    const {drainKeeper} = await import('../../roles/client/admin.js')
    const keeper = await drainKeeper(await this.master(flags), args.id)
    if (flags.json) return this.printJson(keeper)
    this.log(keeper.drain === 'drained' ? `keeper ${keeper.id} is drained` : `keeper ${keeper.id} is draining: ${keeper.files} files to copy elsewhere (see dfs status)`)
  }
}
