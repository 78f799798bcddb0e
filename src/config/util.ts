import type { TSchema } from '@sinclair/typebox'

export function isRecord (v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** The properties of an object schema, or undefined for any other schema. */
export function schemaProperties (schema: TSchema): Record<string, TSchema> | undefined {
  return schema.type === 'object' && isRecord(schema.properties)
    ? schema.properties as Record<string, TSchema>
    : undefined
}

export function deepFreeze<T> (v: T): T {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v)
    for (const child of Object.values(v)) deepFreeze(child)
  }
  return v
}
