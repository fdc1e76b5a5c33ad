/** The API's answers, as the console reads them (`lambdas/core/api/devices.ts`, `query.ts`). */
export interface DeviceSummary {
  readonly deviceId: string;
  readonly deviceType: string;
  readonly status: 'online' | 'offline' | 'never';
  readonly lastSeen: string | null;
  readonly firstSeen: string | null;
  readonly attributes: Readonly<Record<string, string>>;
  readonly lastValues: Readonly<Record<string, number | string | boolean>>;
  readonly lostMessages?: number;
  readonly openAlerts?: readonly {
    readonly rule: string;
    readonly since: string;
    readonly severity?: string;
  }[];
}

/** `GET /v1/devices`: one page; `count` its length, `total` (asked with `count=true`) all that match. */
export interface DeviceList {
  readonly at: string;
  readonly count: number;
  readonly devices: readonly DeviceSummary[];
  readonly next?: string;
  readonly total?: number;
}

export interface ReadingRow {
  readonly time: string;
  readonly metric: string;
  readonly value: number | null;
  readonly value_str?: string | null;
  readonly value_bool?: boolean | null;
}

export interface DailyRow {
  readonly day: string;
  readonly metric: string;
  readonly min: number;
  readonly max: number;
  readonly avg: number;
  readonly count: number;
}

export interface QueryPage<T> {
  readonly rows: readonly T[];
  readonly next?: string;
  readonly running?: boolean;
}

/** Metrics shown as the device's radio: signal strength and quality, LoRaWAN and Sigfox alike. */
export const RADIO_METRIC = /rssi|snr|lqi|signal|link|spreading|^sf$|gateway/i;
export const BATTERY_METRIC = /^bat/i;

/** `GET /v1/devices/{id}/raw`: one message as it arrived (`lambdas/core/api/raw.ts`). */
export interface RawMessage {
  readonly receivedAt: string | null;
  readonly messageId: string | null;
  readonly source: string | null;
  readonly topic: string | null;
  readonly deviceType: string | null;
  /** The payload bytes, base64. */
  readonly payload: string;
  readonly warnings: readonly string[];
  /** `npm run cli -- decode ...` for this payload; null without a device type or for a long payload. */
  readonly decode: string | null;
}

/** `GET /v1/quarantine`: the examples part, as the device page reads it (`lambdas/core/api/quarantine.ts`). */
export interface QuarantineExample {
  readonly receivedAt: string | null;
  readonly messageId: string | null;
  readonly source: string | null;
  readonly topic: string | null;
  readonly reasonCode: string | null;
  readonly reason: string | null;
  readonly payload: string;
  readonly decode: string | null;
}

export interface QuarantinePage {
  readonly examples?: readonly QuarantineExample[];
  readonly next?: string;
  readonly running?: boolean;
}
