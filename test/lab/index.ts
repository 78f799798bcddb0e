/** The network lab: build namespace topologies, run agents and pods in them. */
export { Lab, LabError, withLab, natRuleset, tbfParams } from './lab.ts'
export type { ExecOptions, ExecResult, LabMember, LabOptions, NatRulesetOptions, SpawnOptions } from './lab.ts'
export { LabProcess } from './processes.ts'
export type { ExitInfo } from './processes.ts'
export { CommandError, ensureTools } from './netns.ts'
export type { RunResult } from './netns.ts'
export { DEFAULT_STATE_DIR, NS_PREFIX, listStates, sweepLeftovers } from './state.ts'
export type { LabState } from './state.ts'
export {
  BRIDGE_IP, TopologyError, defaultPodResolvConf, loadTopology, mini, natModes, natkinds, parseRate, seed, topologies, validateTopology
} from './topology.ts'
export type { Bandwidth, LabNode, NatMode, NatRouter, Site, Topology } from './topology.ts'
export { workload, workloadFiles } from './workloads/index.ts'
export type { WorkloadName } from './workloads/index.ts'
