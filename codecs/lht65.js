// Temperature and humidity sensor with an external probe, in the style of the
// LoRaWAN device repository codecs (TS013 decodeUplink, ES5, helpers at top level).
// Frame (fPort 2, 11 bytes): bytes 0-1 battery in mV with 2 status bits on top,
// 2-3 internal temperature (int16, 0.01 °C), 4-5 humidity (uint16, 0.1 %), 6 external
// sensor type (1 = temperature probe), 7-8 external temperature (int16, 0.01 °C;
// 0x7FFF = probe disconnected), 9-10 reserved.

function int16(hi, lo) {
  var value = (hi << 8) | lo;
  return value > 0x7fff ? value - 0x10000 : value;
}

function round(value, digits) {
  var factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

function decodeUplink(input) {
  var bytes = input.bytes;
  if (input.fPort !== 2) {
    return { errors: ['unknown fPort ' + input.fPort + '; measurements come on fPort 2'] };
  }
  if (bytes.length !== 11) {
    return { errors: ['expected 11 bytes on fPort 2, got ' + bytes.length] };
  }
  var warnings = [];
  var data = {
    battery: round((((bytes[0] << 8) | bytes[1]) & 0x3fff) / 1000, 3),
    temperature: round(int16(bytes[2], bytes[3]) / 100, 2),
    humidity: round(((bytes[4] << 8) | bytes[5]) / 10, 1),
  };
  var status = bytes[0] >> 6;
  data.batteryStatus = ['ultra low', 'low', 'ok', 'good'][status];
  if (bytes[6] === 1) {
    var external = int16(bytes[7], bytes[8]);
    if (external === 0x7fff) warnings.push('external probe disconnected');
    else data.externalTemperature = round(external / 100, 2);
  }
  if (data.humidity > 100) {
    return { errors: ['humidity ' + data.humidity + ' % is out of range'] };
  }
  return { data: data, warnings: warnings };
}

var examples = [
  {
    description: 'inside 24.5 °C, 61.3 % humidity, probe at -3.21 °C, battery good',
    input: { fPort: 2, bytes: [0xcb, 0xf6, 0x09, 0x92, 0x02, 0x65, 0x01, 0xfe, 0xbf, 0x7f, 0xff] },
    output: {
      data: {
        battery: 3.062,
        temperature: 24.5,
        humidity: 61.3,
        batteryStatus: 'good',
        externalTemperature: -3.21,
      },
      warnings: [],
    },
  },
  {
    description: 'probe disconnected',
    input: { fPort: 2, bytes: [0x8b, 0xb8, 0xff, 0x38, 0x01, 0xf4, 0x01, 0x7f, 0xff, 0x7f, 0xff] },
    output: {
      data: { battery: 3, temperature: -2, humidity: 50, batteryStatus: 'ok' },
      warnings: ['external probe disconnected'],
    },
  },
  {
    description: 'a frame on another port',
    input: { fPort: 5, bytes: [0x01] },
    output: { errors: ['unknown fPort 5; measurements come on fPort 2'] },
  },
];
