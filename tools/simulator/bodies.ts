/**
 * What each network would send for a simulated reading, as it sends it: the body bytes,
 * their content type and the URL's query (an HTTP way in), or the topic (IoT Core for
 * LoRaWAN publishes to its rule). The one place to add a way in to the simulator and the
 * cost model (`SIMULATED_FORMATS`): one function per network below. A format without
 * one here works everywhere else; it is only not simulated or priced.
 */
import { createHash } from 'node:crypto';
import { FORM_TYPE, JSON_TYPE } from '../../lambdas/core/formats/format.ts';
import { formatOf, type Source } from '../../lambdas/core/formats/index.ts';
import { lorawanRuleName } from '../../lambdas/core/iot-names.ts';
import type { nextReading, SimulatedDevice } from './fleet.ts';

export type SimulatedReading = ReturnType<typeof nextReading>;

/** A LoRaWAN frame for a codec to decode (`frm_payload`, `data`, `PayloadData`, with its port). */
export interface CodecFrame {
  readonly bytes: readonly number[];
  readonly fPort?: number;
}

/** One message as the network sends it. */
export type NetworkRequest =
  | {
      readonly via: 'http';
      /** The route's path (`/v1/sigfox`). */
      readonly path: string;
      /** The URL's query: `type` (the device type) where the network's URL names it, and the route's own (`event=up`). */
      readonly query: Readonly<Record<string, string>>;
      readonly contentType: string;
      readonly body: Buffer;
    }
  | {
      /** Published on the broker (IoT Core for LoRaWAN's destination publishes to its rule). */
      readonly via: 'mqtt';
      readonly topic: string;
      readonly body: Buffer;
    };

export interface RequestOptions {
  /** The stage whose LoRaWAN rule IoT Core for LoRaWAN publishes to (`iot_pipeline_<stage>_lorawan`). @default 'dev' */
  readonly stage?: string;
  /**
   * LoRaWAN networks (`ttn`, `chirpstack`, `iot-lorawan`): the uplink carries this frame
   * for the device type's codec, in place of the network's decoded reading (or the
   * simulator's LHT65 frame).
   */
  readonly frame?: CodecFrame;
}

interface Network {
  /** The format that reads it (`formatOf(source)`). */
  readonly source: Source;
  /** What is sent, for `--help`. */
  readonly summary: string;
  /** Whether {@link RequestOptions.frame} applies. */
  readonly frames: boolean;
  request(device: SimulatedDevice, reading: SimulatedReading, options: RequestOptions): NetworkRequest;
}

/** An HTTP request to `source`'s route. */
function post(
  source: Source,
  body: Buffer | object,
  query: Record<string, string> = {},
  contentType = JSON_TYPE,
): NetworkRequest {
  return {
    via: 'http',
    path: formatOf(source)?.route?.path ?? '',
    query,
    contentType,
    body: Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body)),
  };
}

/** The variables of a Sigfox DATA callback for a reading, with Sigfox's own `customData#` decode of the frame. */
function sigfoxVariables(device: SimulatedDevice, reading: SimulatedReading) {
  const frame = Buffer.alloc(3);
  frame.writeInt16BE(Math.round(reading.temp * 100));
  frame.writeUInt8(Math.min(255, Math.round(reading.battery / 0.02)), 2);
  return {
    device: sigfoxId(device),
    time: Math.floor(reading.$ts / 1000),
    data: frame.toString('hex'),
    seqNumber: reading.$seq % 4096,
    deviceTypeId: '5f0000000000000000000001',
    ack: false,
    station: '1F2E',
    rssi: reading.rssi.toFixed(2),
    snr: (10 + (reading.rssi % 7)).toFixed(2),
    duplicate: false,
    // As Sigfox sends them when its own custom payload config decodes the frame.
    'customData#temp': reading.temp.toFixed(2),
    'customData#battery': reading.battery.toFixed(2),
  };
}

/**
 * Every simulated way in: `http` (our JSON), `sigfox` (a DATA callback as JSON),
 * `sigfox-form` (the same callback form-encoded, Sigfox's default POST body),
 * `ttn` (a The Things Stack uplink), `chirpstack` (a ChirpStack v4 `up` event) and
 * `iot-lorawan` (an AWS IoT Core for LoRaWAN uplink on its rule's topic).
 */
export const NETWORKS = {
  http: {
    source: 'http',
    summary: 'our JSON, POST /v1/telemetry',
    frames: false,
    request: (device, reading) => post('http', { $id: device.id, ...reading }),
  },
  sigfox: {
    source: 'sigfox',
    summary: 'Sigfox DATA callbacks as JSON, POST /v1/sigfox',
    frames: false,
    request: (device, reading) => post('sigfox', sigfoxVariables(device, reading), { type: device.type }),
  },
  'sigfox-form': {
    source: 'sigfox',
    summary: "the same callbacks form-encoded (Sigfox's default POST body)",
    frames: false,
    request: (device, reading) => {
      const form = new URLSearchParams(
        Object.entries(sigfoxVariables(device, reading)).map(([name, value]): [string, string] => [
          name,
          String(value),
        ]),
      );
      return post('sigfox', Buffer.from(form.toString()), { type: device.type }, FORM_TYPE);
    },
  },
  ttn: {
    source: 'ttn',
    summary: 'The Things Stack uplinks with decoded_payload, POST /v1/ttn',
    frames: true,
    request: (device, reading, { frame }) => {
      const received = new Date(reading.$ts).toISOString();
      return post(
        'ttn',
        {
          end_device_ids: {
            device_id: device.id,
            application_ids: { application_id: 'simulator' },
            dev_eui: devEuiOf(device).toUpperCase(),
          },
          received_at: received,
          uplink_message: {
            f_port: frame ? (frame.fPort ?? 1) : 2,
            // The Things Stack leaves a zero counter out.
            ...(reading.$seq === 0 ? {} : { f_cnt: reading.$seq }),
            ...(frame
              ? { frm_payload: Buffer.from(frame.bytes).toString('base64') }
              : { decoded_payload: { temperature: reading.temp, battery: reading.battery } }),
            rx_metadata: [{ gateway_ids: { gateway_id: 'sim-gw' }, rssi: reading.rssi, snr: 7.5 }],
            received_at: received,
          },
        },
        { type: device.type },
      );
    },
  },
  chirpstack: {
    source: 'chirpstack',
    summary: 'ChirpStack v4 up events with object, POST /v1/chirpstack?event=up',
    frames: true,
    request: (device, reading, { frame }) => {
      const devEui = devEuiOf(device);
      const data = frame ? Buffer.from(frame.bytes) : lht65Frame(reading);
      // The JSON marshaler (pbjson) leaves fields at their default out: a zero fCnt, false flags.
      return post(
        'chirpstack',
        {
          deduplicationId: uuidOf(`chirpstack:${device.id}:${reading.$seq}`),
          time: `${new Date(reading.$ts).toISOString().slice(0, -1)}000000+00:00`,
          deviceInfo: {
            tenantId: '52f14cd4-c6f1-4fbd-8f87-4025e1d49242',
            tenantName: 'ChirpStack',
            applicationId: '17c82e96-be03-4f38-aef3-f83d48582d97',
            applicationName: 'simulator',
            deviceProfileId: uuidOf(`profile:${device.type}`),
            deviceProfileName: device.type,
            deviceName: device.id,
            devEui,
            deviceClassEnabled: 'CLASS_A',
            tags: {},
          },
          devAddr: devEui.slice(8),
          adr: true,
          dr: 5,
          ...(reading.$seq === 0 ? {} : { fCnt: reading.$seq }),
          fPort: frame ? (frame.fPort ?? 1) : 2,
          data: data.toString('base64'),
          ...(frame ? {} : { object: lht65Object(reading) }),
          rxInfo: [
            {
              gatewayId: '0016c001f153a14c',
              uplinkId: (reading.$seq * 7919 + 1) % 65536,
              rssi: reading.rssi,
              snr: 7.5,
              channel: 2,
              location: {},
              context: 'E3OWOQ==',
              metadata: { region_config_id: 'eu868', region_common_name: 'EU868' },
              crcStatus: 'CRC_OK',
            },
          ],
          txInfo: {
            frequency: 868500000,
            modulation: { lora: { bandwidth: 125000, spreadingFactor: 7, codeRate: 'CR_4_5' } },
          },
        },
        { type: device.type, event: 'up' },
      );
    },
  },
  'iot-lorawan': {
    source: 'iot-lorawan',
    summary: 'IoT Core for LoRaWAN uplinks (LHT65), MQTT to $aws/rules/iot_pipeline_<stage>_lorawan',
    frames: true,
    request: (device, reading, { frame, stage }) => ({
      via: 'mqtt',
      topic: `$aws/rules/${lorawanRuleName(stage ?? 'dev')}`,
      body: Buffer.from(
        JSON.stringify({
          WirelessDeviceId: wirelessDeviceIdOf(device),
          PayloadData: (frame ? Buffer.from(frame.bytes) : lht65Frame(reading)).toString('base64'),
          WirelessMetadata: {
            LoRaWAN: {
              ADR: false,
              Bandwidth: 125,
              ClassB: false,
              CodeRate: '4/5',
              DataRate: '5',
              DevAddr: devEuiOf(device).slice(8),
              DevEui: devEuiOf(device),
              FCnt: reading.$seq,
              FOptLen: 0,
              FPort: frame ? (frame.fPort ?? 1) : 2,
              Frequency: '868100000',
              Gateways: [{ GatewayEui: 'dca632fffe45b3c0', Rssi: reading.rssi, Snr: 7.5 }],
              MType: 'UnconfirmedDataUp',
              Major: 'LoRaWANR1',
              Modulation: 'LORA',
              PolarizationInversion: false,
              SpreadingFactor: 7,
              // IoT Core for LoRaWAN writes whole seconds.
              Timestamp: new Date(Math.floor(reading.$ts / 1000) * 1000).toISOString().replace('.000Z', 'Z'),
            },
          },
        }),
      ),
    }),
  },
} as const satisfies Record<string, Network>;

export type SimulatedFormat = keyof typeof NETWORKS;

/** The simulated ways in, in `--help` order. */
export const SIMULATED_FORMATS = Object.keys(NETWORKS) as SimulatedFormat[];

/** The message `format`'s network would send for the reading. */
export function networkRequest(
  format: SimulatedFormat,
  device: SimulatedDevice,
  reading: SimulatedReading,
  options: RequestOptions = {},
): NetworkRequest {
  const network: Network = NETWORKS[format];
  if (options.frame && !network.frames) throw new RangeError(`${format} uplinks carry no codec frame`);
  return network.request(device, reading, options);
}

/** A Sigfox-looking hex id for a simulated device. */
function sigfoxId(device: SimulatedDevice): string {
  const n = Number(device.id.replace(/\D/g, '')) || 0;
  return (0x1a0000 + n).toString(16).toUpperCase();
}

/** The simulated device's DevEUI: 16 lowercase hex digits, the same for every LoRaWAN network. */
export function devEuiOf(device: Pick<SimulatedDevice, 'id'>): string {
  return createHash('sha256').update(`deveui:${device.id}`).digest('hex').slice(0, 16);
}

/** The simulated device's IoT Core for LoRaWAN `WirelessDeviceId`: a name-based UUID (version 5 layout) of its id. */
export function wirelessDeviceIdOf(device: Pick<SimulatedDevice, 'id'>): string {
  return uuidOf(`wireless:${device.id}`);
}

function uuidOf(name: string): string {
  const bytes = createHash('sha1').update(name).digest().subarray(0, 16);
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x50;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Relative humidity for a reading: not simulated by the fleet, so derived from the temperature (warmer air, drier). */
function humidityOf(reading: SimulatedReading): number {
  return Math.round(Math.min(95, Math.max(20, 90 - 1.5 * reading.temp)) * 10) / 10;
}

/** The reading as `codecs/lht65.js` decodes it (what ChirpStack's codec puts in `object`). */
export function lht65Object(reading: SimulatedReading): {
  battery: number;
  temperature: number;
  humidity: number;
  batteryStatus: string;
} {
  const status = lht65Status(reading.battery);
  return {
    battery: reading.battery,
    temperature: reading.temp,
    humidity: humidityOf(reading),
    batteryStatus: ['ultra low', 'low', 'ok', 'good'][status] as string,
  };
}

function lht65Status(battery: number): number {
  return battery >= 3 ? 3 : battery >= 2.9 ? 2 : battery >= 2.8 ? 1 : 0;
}

/**
 * The reading as an LHT65 frame on fPort 2 (layout in `codecs/lht65.js`): battery mV with
 * its status bits, temperature in 0.01 °C, humidity in 0.1 %, no external probe.
 */
export function lht65Frame(reading: SimulatedReading): Buffer {
  const frame = Buffer.alloc(11);
  frame.writeUInt16BE(
    (lht65Status(reading.battery) << 14) | (Math.round(reading.battery * 1000) & 0x3fff),
    0,
  );
  frame.writeInt16BE(Math.round(reading.temp * 100), 2);
  frame.writeUInt16BE(Math.round(humidityOf(reading) * 10), 4);
  frame.writeUInt8(0, 6);
  frame.writeUInt16BE(0x7fff, 7);
  frame.writeUInt16BE(0x7fff, 9);
  return frame;
}
