cd "$(dirname "$0")/../../.."
export PYTHONPATH=$PWD GEMB_PROGRESS=0
nice -n 10 python3 -m gemb run coldstart --workdir reports/coldstart/lite \
  --set sim.periods=6 --set sim.n_new=100 --set sim.n_users=1000 --set sim.budget=2000 \
  --set sim.m_recs=15 --set "model.log_seeds=(100,101,102,103)" --set "model.onpolicy_seeds=(200,)" \
  --set model.members=5 --set model.steps=800 \
  --set "tuning.seeds=(10,11)" \
  --set "tuning.candidates.uniform_floor=('uniform_floor','uniform_floor(floor=30)')" \
  --set "tuning.candidates.epsilon_greedy=('epsilon_greedy','epsilon_greedy(epsilon=0.0, chunk=40)')" \
  --set "tuning.candidates.ucb=('ucb','ucb(c=0.1)')" \
  --set "tuning.candidates.thompson=('thompson','thompson(chunk=40)')" \
  --set "tuning.candidates.quota=(\"discoverability(plan='quota', cf=0.1)\",\"discoverability(plan='quota', cf=0.3, floor=20.0)\")" \
  --set "tuning.candidates.discoverability=('discoverability','discoverability(cf=0.9)')" \
  --set "cost_sweep.policies=('discoverability',\"discoverability(plan='quota', cf=0.1)\")" \
  --set "cost_sweep.c_max=(50.0,150.0)" --set "cost_sweep.seeds=(0,1)"
echo "exit $?"
