package io.moemesh.model.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Arrays;
import org.junit.jupiter.api.Test;

class BlockTableTest {

    @Test
    void add_growsPastItsInitialArray_keepingEveryEntryInOrder() {
        BlockTable t = new BlockTable();
        for (int b = 0; b < 20; b++) {
            t.add(100 + b);
        }
        assertThat(t.size()).isEqualTo(20);
        assertThat(t.get(19)).isEqualTo(119);
        assertThat(t.entries().length).isGreaterThanOrEqualTo(20);
        assertThat(Arrays.copyOf(t.entries(), 3)).containsExactly(100, 101, 102);
    }

    @Test
    void removeFirst_movesTheRestToTheFront() {
        BlockTable t = new BlockTable();
        for (int b : new int[] {7, 3, 9, 4}) {
            t.add(b);
        }
        t.removeFirst(3);
        assertThat(t.size()).isOne();
        assertThat(t.get(0)).isEqualTo(4);
        assertThat(t.entries()[0]).isEqualTo(4);
        t.removeFirst(1);
        assertThat(t.size()).isZero();
    }

    @Test
    void entriesOutsideTheTable_andRemovingMoreThanItHolds_areRefused() {
        BlockTable t = new BlockTable();
        t.add(5);
        assertThatThrownBy(() -> t.get(1)).isInstanceOf(IndexOutOfBoundsException.class)
                .hasMessage("entry 1 of a block table of 1");
        assertThatThrownBy(() -> t.removeFirst(2)).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("cannot remove 2 entries of a block table of 1");
    }
}
