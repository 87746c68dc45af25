import {Args} from '@oclif/core'

import {DfsCommand, caFlag, jsonFlag, masterFlag, tokenFlag} from '../../lib/base-command.js'

export default class KeeperForgetCommand extends DfsCommand {
  static override summary = 'Forget a dead or drained keeper: it leaves dfs status, its replicas leave the table.'
  static override description = `For a keeper that is gone for good (a dead disk, a machine retired) or drained. Files it held that are short of their target are copied again from their other replicas. A keeper that is alive and not drained is refused (drain it first). A forgotten keeper that still runs comes back as a new member at its next heartbeat: stop it first. Forgetting takes an admin token.`

  static override examples = ['<%= config.bin %> keeper forget kX3b9Qa']
  static override args = {id: Args.string({description: 'id of the keeper, as dfs status shows it', required: true})}
  static override flags = {master: masterFlag, token: tokenFlag, ca: caFlag, json: jsonFlag}

  async run(): Promise<void> {
    const {args, flags} = await this.parse(KeeperForgetCommand)
    const {forgetKeeper} = await import('../../roles/client/admin.js')
    const result = await forgetKeeper(await this.master(flags), args.id)
    if (flags.json) return this.printJson(result)
    this.log(`forgot keeper ${result.id} and its ${result.replicas} replicas`)
  }
}
