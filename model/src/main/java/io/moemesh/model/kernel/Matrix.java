package io.moemesh.model.kernel;

import io.moemesh.model.ModelFormatException;
import io.moemesh.model.safetensors.DType;
import io.moemesh.model.safetensors.TensorView;
import java.lang.foreign.MemorySegment;

/**
 * A weight matrix {@code [rows, cols]} in the checkpoint's dtype (row-major, little-endian), the layout of a
 * {@code torch.nn.Linear} weight: one row per output feature. It is never converted as a whole: kernels
 * widen bf16/f16 to float32 in registers or in small blocks.
 */
public record Matrix(String name, MemorySegment data, DType dtype, int rows, int cols) {

    public Matrix {
        long need = (long) rows * cols * dtype.bytes();
        if (data.byteSize() != need) {
            throw new ModelFormatException(name + ": " + data.byteSize() + " bytes, expected " + need + " for ["
                    + rows + ", " + cols + "] " + dtype);
        }
    }

    public static Matrix of(TensorView t) {
        if (t.shape().length != 2) {
            throw new ModelFormatException(t.file() + ": tensor " + t.name() + " has shape " + t.shapeString()
                    + ", expected a matrix");
        }
        return new Matrix(t.name(), t.data(), t.dtype(), t.rows(), t.cols());
    }

    /** A 1-d tensor as a one-row matrix. */
    public static Matrix of1d(TensorView t) {
        if (t.shape().length != 1) {
            throw new ModelFormatException(t.file() + ": tensor " + t.name() + " has shape " + t.shapeString()
                    + ", expected a vector");
        }
        return new Matrix(t.name(), t.data(), t.dtype(), 1, t.cols());
    }

    /** A float32 matrix over a heap array (tests, scratch blocks). */
    public static Matrix ofFloats(String name, float[] values, int rows, int cols) {
        return new Matrix(name, MemorySegment.ofArray(values), DType.F32, rows, cols);
    }

    /** Bytes the matrix occupies in memory. */
    public long byteSize() {
        return data.byteSize();
    }

    /** Element (r, c) widened to float32; for tests and scalar reference paths. */
    public float get(int r, int c) {
        return Numerics.load(data, dtype, (long) r * cols + c);
    }

    /** Reads row {@code r} widened to float32 into {@code out[off, off + cols)}. */
    public void row(int r, float[] out, int off) {
        Numerics.widen(data, dtype, (long) r * cols, out, off, cols);
    }
}
