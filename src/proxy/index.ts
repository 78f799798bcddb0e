/**
 * EdgeProxy: ClusterIP interception (nftables), the kernel DNAT path, and
 * userspace TCP/UDP proxying to local endpoints or through the tunnel.
 * @packageDocumentation
 */
export { EdgeProxy } from './proxy.ts'
export type { EdgeProxyDeps, EdgeProxyInit } from './proxy.ts'
export { NftInterceptor, NoInterceptor, parseTable, runCommand, runNft } from './nftables.ts'
export type { Interceptor, NftRunner } from './nftables.ts'
export { renderCleanup, renderDiff, renderReplace, ruleKey, chainName, TABLE } from './rules.ts'
export type { PortRule, RuleTarget } from './rules.ts'
export { InterceptionError, NoEndpointError, Socks5ProtocolError } from './errors.ts'
export { Socks5Server, SocksReply } from './socks5.ts'
export type { Socks5Deps, Socks5Init } from './socks5.ts'
export { FallbackInterceptor, IptablesInterceptor, IPTABLES_CHAIN, detectBackend, nftUnavailable, parseIptables, renderIptables } from './iptables.ts'
export type { CommandRunner, IptablesBackend } from './iptables.ts'
