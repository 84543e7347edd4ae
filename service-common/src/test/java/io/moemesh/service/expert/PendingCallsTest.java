package io.moemesh.service.expert;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;

class PendingCallsTest {

    @Test
    void aBrokenStream_failsOnlyTheCallsSentOnIt_notOnesSentMeanwhileOnItsReplacement_norUnsentOnes() {
        Object oldStream = new Object();
        Object newStream = new Object();
        PendingCalls pending = new PendingCalls();
        CompletableFuture<float[]> onOld = new CompletableFuture<>();
        CompletableFuture<float[]> onNew = new CompletableFuture<>();
        CompletableFuture<float[]> unsent = new CompletableFuture<>();
        pending.add(1, onOld, 1, 4).sentOn(oldStream);
        // The transport thread cleared the old stream; the engine thread opened the new one and sent call 2 on it
        // before the old stream's calls were failed.
        pending.add(2, onNew, 1, 4).sentOn(newStream);
        pending.add(3, unsent, 1, 4);
        RuntimeException broken = new RuntimeException("old stream reset");
        pending.failSentOn(oldStream, broken);
        assertThat(onOld).isCompletedExceptionally();
        assertThat(onNew).isNotDone();
        assertThat(unsent).isNotDone();
        assertThat(pending.remove(2).future).isSameAs(onNew);
        assertThat(pending.remove(2)).isNull();
        assertThat(pending.size()).isEqualTo(2);
    }
}
