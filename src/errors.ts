/**
 * The one error type the JS API rejects with. Its codes are not declared here: `ErrorCode` is
 * rendered from the Rust host's `ErrorCode` (bindings/src/js.rs), which maps each case of the
 * core's error to one code, so JS, Kotlin and Swift share one table that none of them writes.
 */

import type { ErrorCode, JsError } from './generated/native';

export type { ErrorCode } from './generated/native';

/** The error every promise of this package rejects with. */
export class ChatSyncError extends Error {
  /** What went wrong, as a stable code to branch on (`E_OFFLINE`, `E_REJECTED`, ...). */
  readonly code: ErrorCode;
  /** `E_OFFLINE`: the server's Retry-After in seconds, when it gave one. */
  readonly retryAfterSecs: number | null;
  /** `E_REJECTED`: the server's own code (`forbidden`, `payload_too_large`). */
  readonly serverCode: string | null;

  constructor(code: ErrorCode, message: string, retryAfterSecs: number | null = null, serverCode: string | null = null) {
    super(message);
    this.name = 'ChatSyncError';
    this.code = code;
    this.retryAfterSecs = retryAfterSecs;
    this.serverCode = serverCode;
    Object.setPrototypeOf(this, ChatSyncError.prototype);
  }

  /** The error of a native reply's `err`. */
  static fromJs(error: JsError): ChatSyncError {
    return new ChatSyncError(error.code, error.message, error.retryAfterSecs, error.serverCode);
  }

  /** Whether retrying later may succeed (offline, busy). */
  get isTransient(): boolean {
    return this.code === 'E_OFFLINE' || this.code === 'E_BUSY';
  }
}

/** Anything thrown, as a {@link ChatSyncError} (`E_INTERNAL` keeping the text when it is not one). */
export function toChatSyncError(error: unknown): ChatSyncError {
  if (error instanceof ChatSyncError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new ChatSyncError('E_INTERNAL', message);
}

/**
 * Unwraps a native reply (`{"ok": value}` or `{"err": JsError}`, the JSON every method of the
 * module resolves with): the value, or a thrown {@link ChatSyncError}.
 */
export function unwrapReply<T>(json: string): T {
  let reply: unknown;
  try {
    reply = JSON.parse(json);
  } catch {
    throw new ChatSyncError('E_INTERNAL', `the native module answered something that is not JSON: ${json.slice(0, 80)}`);
  }
  if (typeof reply === 'object' && reply !== null) {
    if ('ok' in reply) return (reply as { ok: T }).ok;
    if ('err' in reply) throw ChatSyncError.fromJs((reply as { err: JsError }).err);
  }
  throw new ChatSyncError('E_INTERNAL', `the native module answered an unknown reply: ${json.slice(0, 80)}`);
}
