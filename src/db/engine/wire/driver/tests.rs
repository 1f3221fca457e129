//! The task against a scripted server (`testing`): what each exchange reports when the server
//! answers, leaves a transaction open, ends the session, goes silent or starts a COPY.
use super::*;
use crate::db::engine::wire::exchange::Answer;
use crate::db::engine::wire::testing::{self, Reply};
use tokio::sync::oneshot;

type Outcome = Result<Answer, Failed>;

/// A request: Execute of the unnamed portal, and Sync.
fn request() -> BytesMut {
    let mut bytes = BytesMut::new();
    frontend::execute("", 0, &mut bytes).unwrap();
    frontend::sync(&mut bytes);
    bytes
}

fn exchange(sinks: Vec<Sink>, deadline: Option<Instant>) -> (Exchange, oneshot::Receiver<Outcome>) {
    let (reply, outcome) = oneshot::channel();
    let done = Box::new(move |result| {
        let _ = reply.send(result);
    });
    (Exchange::new(sinks, Expect::Idle, deadline, done), outcome)
}

/// Sends `count` requests on a channel whose task has not started yet (so that they all go
/// out in its first write), then starts the task.
async fn sent_together(
    count: usize,
    sinks: impl Fn() -> Vec<Sink>,
    script: impl FnMut(usize, u8) -> Reply + Send + 'static,
) -> (
    Arc<Channel>,
    Vec<oneshot::Receiver<Outcome>>,
    testing::Seen,
    tokio::task::JoinHandle<Ending>,
) {
    let (stream, seen) = testing::serve(script).await;
    let channel = Arc::new(Channel::new(None));
    let mut outcomes = Vec::new();
    for _ in 0..count {
        let (exchange, outcome) = exchange(sinks(), None);
        channel.send(&request(), exchange).unwrap();
        outcomes.push(outcome);
    }
    let driver = Driver::new(
        channel.clone(),
        stream,
        BytesMut::new(),
        None,
        Duration::from_millis(100),
    );
    (channel, outcomes, seen, tokio::spawn(driver.run()))
}

fn text_of(outcome: Outcome) -> Vec<Vec<Option<String>>> {
    match outcome.unwrap().sinks.pop() {
        Some(Sink::Text(rows)) => rows,
        _ => panic!("no text rows"),
    }
}

#[tokio::test]
async fn answers_reach_their_exchanges_in_order() {
    let (_, outcomes, _, _) = sent_together(
        3,
        || vec![Sink::Text(Vec::new())],
        |n, _| {
            Reply::Send(
                [
                    testing::bind_complete(),
                    testing::data_row(&[&n.to_string()]),
                    testing::command_complete("SELECT 1"),
                    testing::ready(b'I'),
                ]
                .concat(),
            )
        },
    )
    .await;
    for (n, outcome) in outcomes.into_iter().enumerate() {
        assert_eq!(
            text_of(outcome.await.unwrap()),
            vec![vec![Some(n.to_string())]]
        );
    }
}

#[tokio::test]
async fn a_request_that_leaves_a_transaction_open_takes_nothing_with_it() {
    // The first leaves the session in a transaction; the two behind it run inside it; then
    // the task's ROLLBACK (a simple query) answers idle.
    let (channel, outcomes, seen, task) = sent_together(
        3,
        || vec![Sink::Discard],
        |_, tag| match tag {
            b'Q' => {
                Reply::Send([testing::command_complete("ROLLBACK"), testing::ready(b'I')].concat())
            }
            _ => Reply::Send(testing::executed(b'T')),
        },
    )
    .await;
    let mut outcomes = outcomes.into_iter();
    let first = outcomes.next().unwrap().await.unwrap();
    assert!(
        matches!(first, Err(Failed::LeftTransactionOpen)),
        "{first:?}"
    );
    for behind in outcomes {
        let outcome = behind.await.unwrap();
        assert!(matches!(outcome, Err(Failed::RolledBack)), "{outcome:?}");
    }
    let (late, late_outcome) = exchange(vec![Sink::Discard], None);
    assert!(
        channel.send(&request(), late).is_err(),
        "it takes nothing more"
    );
    drop(late_outcome);
    assert!(matches!(task.await.unwrap(), Ending::Closed));
    for _ in 0..200 {
        if seen.tags().len() == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        seen.tags(),
        b"SSSQX",
        "three requests, the ROLLBACK, Terminate"
    );
}

#[tokio::test]
async fn a_statement_that_ends_the_open_transaction_makes_what_ran_in_it_unknown() {
    let (_, outcomes, _, _) = sent_together(
        2,
        || vec![Sink::Discard],
        |n, tag| match (n, tag) {
            (0, _) => Reply::Send(testing::executed(b'T')),
            (1, _) => Reply::Send(testing::executed(b'I')),
            _ => {
                Reply::Send([testing::command_complete("ROLLBACK"), testing::ready(b'I')].concat())
            }
        },
    )
    .await;
    let mut outcomes = outcomes.into_iter();
    assert!(matches!(
        outcomes.next().unwrap().await.unwrap(),
        Err(Failed::LeftTransactionOpen)
    ));
    assert!(matches!(
        outcomes.next().unwrap().await.unwrap(),
        Err(Failed::Lost(_))
    ));
}

#[tokio::test]
async fn the_server_s_shutdown_aborts_the_running_statement_and_reads_nothing_after() {
    let (channel, outcomes, _, task) = sent_together(
        2,
        || vec![Sink::Discard],
        |n, _| match n {
            0 => Reply::Silence,
            _ => Reply::SendThenClose(testing::error(
                "FATAL",
                "57P01",
                "terminating connection due to administrator command",
            )),
        },
    )
    .await;
    let mut outcomes = outcomes.into_iter();
    let running = outcomes.next().unwrap().await.unwrap();
    assert!(
        matches!(&running, Err(Failed::EndedByServer(fields)) if fields.code == "57P01"),
        "{running:?}"
    );
    assert!(matches!(
        outcomes.next().unwrap().await.unwrap(),
        Err(Failed::NotRun(_))
    ));
    assert!(matches!(task.await.unwrap(), Ending::ByServer(_)));
    assert_eq!(channel.closed(), Some(Closed::Ended));
}

#[tokio::test]
async fn a_connection_lost_without_a_word_leaves_the_sent_statement_unknown() {
    let (channel, outcomes, _, _) = sent_together(
        1,
        || vec![Sink::Discard],
        |_, _| Reply::SendThenClose(Vec::new()),
    )
    .await;
    for outcome in outcomes {
        assert!(matches!(outcome.await.unwrap(), Err(Failed::Lost(_))));
    }
    let (late, late_outcome) = exchange(vec![Sink::Discard], None);
    if let Err(unsent) = channel.send(&request(), late) {
        unsent.fail(Failed::NotSent("closed".into()));
    }
    assert!(matches!(
        late_outcome.await.unwrap(),
        Err(Failed::NotSent(_))
    ));
}

#[tokio::test]
async fn a_cancel_meant_for_another_statement_leaves_this_one_free_to_run_again() {
    let (_, outcomes, _, _) = sent_together(
        1,
        || vec![Sink::Discard],
        |_, _| {
            Reply::Send(
                [
                    testing::error("ERROR", "57014", "canceling statement due to user request"),
                    testing::ready(b'I'),
                ]
                .concat(),
            )
        },
    )
    .await;
    for outcome in outcomes {
        assert!(matches!(outcome.await.unwrap(), Err(Failed::Cancelled)));
    }
}

#[tokio::test]
async fn past_its_deadline_a_statement_is_cancelled_and_a_silent_connection_discarded() {
    let (stream, _) = testing::serve(|_, _| Reply::Silence).await;
    let channel = Arc::new(Channel::new(Some(stream.direct_writer())));
    let driver = Driver::new(
        channel.clone(),
        stream,
        BytesMut::new(),
        None,
        Duration::from_millis(50),
    );
    let task = tokio::spawn(driver.run());
    let (late, late_outcome) = exchange(
        vec![Sink::Discard],
        Some(Instant::now() + Duration::from_millis(20)),
    );
    let (behind, behind_outcome) = exchange(vec![Sink::Discard], None);
    channel.send(&request(), late).unwrap();
    channel.send(&request(), behind).unwrap();
    // The pool's watch, which wakes the task once the deadline it published has passed.
    let watch = tokio::spawn({
        let channel = channel.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_millis(5)).await;
                channel.wake_if_overdue(Instant::now());
            }
        }
    });
    assert!(matches!(late_outcome.await.unwrap(), Err(Failed::TimedOut)));
    assert!(matches!(
        behind_outcome.await.unwrap(),
        Err(Failed::Lost(_))
    ));
    assert!(matches!(task.await.unwrap(), Ending::Discarded));
    watch.abort();
}

#[tokio::test]
async fn a_copy_from_stdin_is_ended_by_the_task_and_refused() {
    let (_, outcomes, seen, _) = sent_together(
        1,
        || vec![Sink::Discard],
        |n, _| match n {
            0 => Reply::Send([testing::bind_complete(), testing::copy_in()].concat()),
            _ => Reply::Send(
                [
                    testing::error("ERROR", "57014", "COPY from stdin failed"),
                    testing::ready(b'I'),
                ]
                .concat(),
            ),
        },
    )
    .await;
    for outcome in outcomes {
        assert!(matches!(outcome.await.unwrap(), Err(Failed::Copy)));
    }
    assert_eq!(
        seen.tags(),
        b"SS",
        "the request, then the task's CopyFail and Sync"
    );
}
