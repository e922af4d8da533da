pub mod eval;
pub mod eval_rec;
pub mod model;
pub mod prepare;
pub mod train;
pub mod recommend;
pub mod train_interest;
