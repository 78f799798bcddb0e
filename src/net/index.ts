/** Host networking helpers shared by the modules. */
export { BridgeDevice } from './bridge-device.ts'
export type { BridgeDeviceDeps, BridgeDeviceInit } from './bridge-device.ts'
export { IpHostNet, NoopHostNet, execRunner } from './host-net.ts'
export type { CommandRunner, HostNet, LinkState } from './host-net.ts'
export { HostCommandError } from './errors.ts'
export { BufferReclaimer, BufferReclaimerMetrics } from './buffer-reclaimer.ts'
export type { CopiedStreams } from './buffer-reclaimer.ts'
