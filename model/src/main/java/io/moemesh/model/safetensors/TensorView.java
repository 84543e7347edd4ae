package io.moemesh.model.safetensors;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * One tensor of a checkpoint, still in the file's dtype: a memory-mapped, little-endian, row-major segment.
 * Nothing is read until the caller touches {@link #data()}.
 *
 * @param file  the file it lives in, for error messages
 * @param shape sizes per dimension, outermost first
 */
public record TensorView(String name, DType dtype, long[] shape, MemorySegment data, String file) {

    public long elements() {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        return n;
    }

    /** Rows of a matrix ([rows, cols]); a vector is one row. */
    public int rows() {
        return shape.length == 2 ? Math.toIntExact(shape[0]) : 1;
    }

    public int cols() {
        return Math.toIntExact(shape[shape.length - 1]);
    }

    public String shapeString() {
        return Arrays.toString(shape);
    }

    @Override
    public String toString() {
        return name + " " + dtype + shapeString() + " in " + file;
    }
}
