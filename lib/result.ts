// Decoded<T> is what every codec returns: bad input is a value, not an exception.
export interface DecodeError<C extends string = string> {
  code: C;
  offset: number;
  detail?: string;
}

export type Decoded<T, C extends string = string> =
  | { ok: true; value: T }
  | { ok: false; error: DecodeError<C> };

export function decoded<T>(value: T): { ok: true; value: T } {
  return { ok: true, value };
}

export function failed<C extends string>(code: C, offset: number, detail?: string): { ok: false; error: DecodeError<C> } {
  return detail === undefined ? { ok: false, error: { code, offset } } : { ok: false, error: { code, offset, detail } };
}

export type Result<T, E> = { ok: true; value: T } | { ok: false; error: E };
