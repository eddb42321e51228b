import protobuf from "protobufjs/light.js";

/**
 * The subset of ONNX's protobuf schema (onnx/onnx.proto, IR version 8) needed to describe a graph of
 * standard operators with symbolic input shapes. Field numbers are the schema's; protobufjs does the wire
 * encoding. Only what this project emits is declared, so unknown fields cannot sneak in.
 */
const root = protobuf.Root.fromJSON({
  nested: {
    onnx: {
      nested: {
        ModelProto: {
          fields: {
            irVersion: { type: "int64", id: 1 },
            producerName: { type: "string", id: 2 },
            producerVersion: { type: "string", id: 3 },
            docString: { type: "string", id: 6 },
            graph: { type: "GraphProto", id: 7 },
            opsetImport: { rule: "repeated", type: "OperatorSetIdProto", id: 8 },
          },
        },
        OperatorSetIdProto: {
          fields: { domain: { type: "string", id: 1 }, version: { type: "int64", id: 2 } },
        },
        GraphProto: {
          fields: {
            node: { rule: "repeated", type: "NodeProto", id: 1 },
            name: { type: "string", id: 2 },
            initializer: { rule: "repeated", type: "TensorProto", id: 5 },
            input: { rule: "repeated", type: "ValueInfoProto", id: 11 },
            output: { rule: "repeated", type: "ValueInfoProto", id: 12 },
          },
        },
        NodeProto: {
          fields: {
            input: { rule: "repeated", type: "string", id: 1 },
            output: { rule: "repeated", type: "string", id: 2 },
            name: { type: "string", id: 3 },
            opType: { type: "string", id: 4 },
            attribute: { rule: "repeated", type: "AttributeProto", id: 5 },
          },
        },
        AttributeProto: {
          // `type` is the AttributeType enum, sent as its number.
          fields: {
            name: { type: "string", id: 1 },
            f: { type: "float", id: 2 },
            i: { type: "int64", id: 3 },
            t: { type: "TensorProto", id: 5 },
            ints: { rule: "repeated", type: "int64", id: 8, options: { packed: true } },
            type: { type: "int32", id: 20 },
          },
        },
        TensorProto: {
          // `dataType` is the DataType enum (ElemType), sent as its number; values go in `rawData` (little-endian).
          fields: {
            dims: { rule: "repeated", type: "int64", id: 1, options: { packed: true } },
            dataType: { type: "int32", id: 2 },
            name: { type: "string", id: 8 },
            rawData: { type: "bytes", id: 9 },
          },
        },
        ValueInfoProto: {
          fields: { name: { type: "string", id: 1 }, type: { type: "TypeProto", id: 2 } },
        },
        TypeProto: {
          fields: { tensorType: { type: "TensorTypeProto", id: 1 } },
        },
        TensorTypeProto: {
          fields: { elemType: { type: "int32", id: 1 }, shape: { type: "TensorShapeProto", id: 2 } },
        },
        TensorShapeProto: {
          fields: { dim: { rule: "repeated", type: "Dimension", id: 1 } },
        },
        Dimension: {
          fields: { dimValue: { type: "int64", id: 1 }, dimParam: { type: "string", id: 2 } },
        },
      },
    },
  },
});

const ModelProto = root.lookupType("onnx.ModelProto");

/** TensorProto.DataType values. */
export const ElemType = { FLOAT: 1, INT64: 7, DOUBLE: 11 } as const;
/** AttributeProto.AttributeType values. */
export const AttributeType = { FLOAT: 1, INT: 2, TENSOR: 4, INTS: 7 } as const;

/** A constant tensor (an initializer, named; or an attribute's value): its values as little-endian bytes (the host's order: dtype.ts refuses big-endian hosts). */
export interface OnnxTensor {
  name?: string;
  dataType: number;
  dims: number[];
  rawData: Uint8Array;
}

export interface OnnxAttribute {
  name: string;
  type: number;
  f?: number;
  i?: number;
  t?: OnnxTensor;
  ints?: number[];
}
export interface OnnxNode {
  opType: string;
  input: string[];
  output: string[];
  name?: string;
  attribute?: OnnxAttribute[];
}
export interface OnnxValueInfo {
  name: string;
  type: { tensorType: { elemType: number; shape: { dim: Array<{ dimValue?: number; dimParam?: string }> } } };
}
export interface OnnxModel {
  irVersion: number;
  producerName: string;
  producerVersion: string;
  docString?: string;
  opsetImport: Array<{ domain: string; version: number }>;
  graph: { name: string; node: OnnxNode[]; input: OnnxValueInfo[]; output: OnnxValueInfo[]; initializer?: OnnxTensor[] };
}

/** An fp32 constant tensor of shape `dims`, row-major. */
export function floatTensor(dims: number[], values: Float32Array | readonly number[]): OnnxTensor {
  const data = values instanceof Float32Array ? values : Float32Array.from(values);
  return { dataType: ElemType.FLOAT, dims, rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

/** An int64 constant tensor of shape `dims` (shapes, axes, indices), row-major. */
export function int64Tensor(dims: number[], values: readonly number[]): OnnxTensor {
  const data = BigInt64Array.from(values, (value) => BigInt(value));
  return { dataType: ElemType.INT64, dims, rawData: new Uint8Array(data.buffer) };
}

export function encodeModel(model: OnnxModel): Uint8Array {
  const problem = ModelProto.verify(model);
  if (problem) throw new Error(`internal error: invalid ONNX model: ${problem}`);
  return ModelProto.encode(ModelProto.fromObject(model)).finish();
}
