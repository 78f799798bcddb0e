import { MissingEnvError } from '../errors.ts'
import type { KubeAPIConfig, RunningMode } from './schema.ts'
import { detectMode } from './load.ts'

/**
 * Runtime facts about this node. They come from the environment, never from
 * the config file, and are never written back into the config.
 */
export interface NodeIdentity {
  /** Kubernetes node name (NODE_NAME); the gateway's is `<node>-gateway`. */
  nodeName: string
  /** Namespace the agent runs in (NAMESPACE); empty for the gateway. */
  namespace: string
  mode: RunningMode
}

/** Upstream: master or kubeConfig → ManualMode; else the file's mode; else detected. */
export function resolveMode (kubeApi: KubeAPIConfig, env: NodeJS.ProcessEnv): RunningMode {
  if (kubeApi.master !== '' || kubeApi.kubeConfig !== '') return 'ManualMode'
  return kubeApi.mode ?? detectMode(env)
}

export function agentIdentity (kubeApi: KubeAPIConfig, env: NodeJS.ProcessEnv): NodeIdentity {
  return {
    nodeName: requireEnv(env, 'NODE_NAME', 'the Kubernetes node this agent runs on; set it from spec.nodeName'),
    namespace: requireEnv(env, 'NAMESPACE', 'the namespace the agent runs in; set it from metadata.namespace'),
    mode: resolveMode(kubeApi, env)
  }
}

export function gatewayIdentity (kubeApi: KubeAPIConfig, env: NodeJS.ProcessEnv): NodeIdentity {
  const node = requireEnv(env, 'NODE_NAME', 'the Kubernetes node this gateway runs on; set it from spec.nodeName')
  return { nodeName: `${node}-gateway`, namespace: env.NAMESPACE ?? '', mode: resolveMode(kubeApi, env) }
}

function requireEnv (env: NodeJS.ProcessEnv, name: string, why: string): string {
  const v = env[name]?.trim()
  if (v === undefined || v === '') throw new MissingEnvError(name, why)
  return v
}
